package eclrs_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

func Example() {
	// A v1 export: the header decides the layout of every row.
	header := strings.Join(eclrs.V1.Columns(), "|") + "\r\n"
	v, err := eclrs.DetectVersion([]byte(header))
	if err != nil {
		panic(err)
	}

	row := "LASTNAME||FIRSTNAME|01MAR1947:00:00:00.000000|M|123 MAIN St||||1111|(555) 123-4567|3130|31D0652945|" +
		`"ACME LABORATORIES INC"|15200000000000|321 Main Street||New Rochelle||NEW YORK STATE||321 Main Street|` +
		"New Rochelle||Sally|Testuser|18MAR2020:00:00:00.000000|20MAR2020:06:03:36.589000|TH68-0|COVID-19 Nasopharynx|" +
		"94309-2|2019-nCoV RNA XXX NAA+probe-Imp|19MAR2020:19:20:00.000000|Positive for 2019-nCoV|Positive for 2019-nCoV|" +
		"F||10828004|Positive for 2019-nCoV|102695116|19MAR2020:19:20:00.000000|NASOPHARYNX|15200070260000|" +
		"14MAY2020:13:43:16.000000|POSITIVE\r\n"
	r, err := v.ParseLine([]byte(row), 2)
	if err != nil {
		panic(err)
	}
	fmt.Println(v, r.Fields[eclrs.FieldLabName], r.CountyID, r.Fields[eclrs.FieldResult])
	// The identity is the same as for this result in a v3 export with empty new
	// columns, and the needless quotes do not change it.
	fmt.Println(r.ChecksumBase64())

	// A malformed row is an error for that row only.
	_, err = v.ParseLine([]byte(strings.Replace(row, "|1111|", "|11 11|", 1)), 3)
	var rowErr *eclrs.RowError
	fmt.Println(errors.As(err, &rowErr), err)
	// Output:
	// v1 ACME LABORATORIES INC 1111 POSITIVE
	// RTUA3m3vajNkf9VHtXDIEkK/WZRmH5y1qizhGDx2l/4=
	// true line 3: field PIDCOUNTYCODE: not a decimal county code: "11 11"
}

func ExampleAppendTestResultRow() {
	v3 := eclrs.V3.Columns()
	v3[eclrs.FieldCountyCode] = "59"
	r, err := eclrs.V3.ParseLine([]byte(strings.Join(v3, "|")), 2)
	if err != nil {
		panic(err)
	}
	// One binary COPY stream: the header, any number of rows, the trailer. It goes to PostgreSQL as
	// conn.PgConn().CopyFrom(ctx, bytes.NewReader(stream), eclrs.TestResultCopySQL).
	stream := append([]byte(nil), eclrs.CopyHeader...)
	stream = eclrs.AppendTestResultRow(stream, 1, 10, &r)
	stream = append(stream, eclrs.CopyTrailer...)
	fields := binary.BigEndian.Uint16(stream[len(eclrs.CopyHeader):])
	fmt.Println(fields, "fields:", len(eclrs.TestResultColumns), "from the line and 3 of identity")
	// Output:
	// 74 fields: 71 from the line and 3 of identity
}
