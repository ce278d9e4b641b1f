package eclrsgen_test

import (
	"bufio"
	"bytes"
	"fmt"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
	"github.com/viaduct-nys/viaduct/pkg/eclrs/eclrsgen"
)

func ExampleWrite() {
	// Two overlapping exports, like consecutive 14-day dumps: rows 2 and 3 are in
	// both, with the same checksums. Row 3 is a second test of row 0's person.
	var older, newer bytes.Buffer
	if err := eclrsgen.Write(&older, eclrsgen.Options{Rows: 4, Seed: 1}); err != nil {
		panic(err)
	}
	if err := eclrsgen.Write(&newer, eclrsgen.Options{Rows: 4, FirstRow: 2, Seed: 1}); err != nil {
		panic(err)
	}
	for _, export := range []*bytes.Buffer{&older, &newer} {
		sc := bufio.NewScanner(export)
		sc.Scan()
		v, err := eclrs.DetectVersion(sc.Bytes())
		if err != nil {
			panic(err)
		}
		for n := 2; sc.Scan(); n++ {
			r, err := v.ParseLine(sc.Bytes(), n)
			if err != nil {
				panic(err)
			}
			fmt.Println(v, n, r.Fields[eclrs.FieldPatientNameLast], r.Fields[eclrs.FieldPatientKey], r.CountyID, r.ChecksumBase64()[:8])
		}
	}
	// Output:
	// v3 2 JOHNSON 15217913123740 117 Ra2IJoZe
	// v3 3 HARRIS 15203281782829 81 d7pczoo4
	// v3 4 FRIEDMAN 15253041248818 47 HK6boPb9
	// v3 5 JOHNSON 15217913123740 117 tm1pXcHC
	// v3 2 FRIEDMAN 15253041248818 47 HK6boPb9
	// v3 3 JOHNSON 15217913123740 117 tm1pXcHC
	// v3 4 WALKER 15224458268237 31 BazdPCpo
	// v3 5 ALI 15250347044226 47 PuPhaPGF
}
