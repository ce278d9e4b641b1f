package eclrsgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"time"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// Options describes the export to write.
type Options struct {
	// Rows is the number of data rows to write.
	Rows int
	// FirstRow is the index of the first row written. Row i is the same in every file
	// written with the same Seed (and Counties, Version and Now), so files for the
	// ranges [0, 500000) and [5000, 505000) share 495000 identical lines.
	FirstRow int
	// Seed selects the data set.
	Seed int64
	// Counties are the PIDCOUNTYCODE values to use, chosen uniformly. Defaults to New
	// York's 62 county FIPS codes (1 to 123, odd), weighted by population.
	Counties []int64
	// Version is the layout to write. Defaults to eclrs.V3.
	Version eclrs.Version
	// Now ends the 14-day window the collection and create dates fall in. Defaults to
	// 2021-04-01 00:00 New York time, a fixed date, so output never depends on the
	// clock.
	Now time.Time
}

// defaultNow is the default end of the date window: v3 exports existed then.
var defaultNow = time.Date(2021, 4, 1, 4, 0, 0, 0, time.UTC) // midnight in New York

// Write writes a header line and o.Rows data rows, each ended by "\n", to w.
func Write(w io.Writer, o Options) error {
	g, err := newGenerator(o)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString(g.version.Header() + "\n"); err != nil {
		return fmt.Errorf("writing header: %w", err)
	}
	row := make([]byte, 0, 2048)
	for i := o.FirstRow; i < o.FirstRow+o.Rows; i++ {
		row = append(g.appendRow(row[:0], i), '\n')
		if _, err := bw.Write(row); err != nil {
			return fmt.Errorf("writing row %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing rows: %w", err)
	}
	return nil
}

// generator holds the options in the form the row writer uses.
type generator struct {
	seed    uint64
	version eclrs.Version
	// wallNow is the end of the date window as New York wall-clock seconds (civil time
	// encoded as if it were UTC), so dates are formatted without zone lookups.
	wallNow int64
	// counties and cumWeights pick a row's county: a weighted choice over places, or a
	// uniform one over Options.Counties (cumWeights nil).
	counties   []int64
	cumWeights []int
}

var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York") // eclrs embeds tzdata
	if err != nil {
		panic("eclrsgen: loading America/New_York: " + err.Error())
	}
	return loc
}()

func newGenerator(o Options) (*generator, error) {
	if o.Rows < 0 || o.FirstRow < 0 {
		return nil, errors.New("eclrsgen: Rows and FirstRow must not be negative")
	}
	if o.Version == 0 {
		o.Version = eclrs.V3
	}
	if o.Version.NumFields() == 0 {
		return nil, fmt.Errorf("eclrsgen: unknown version %v", o.Version)
	}
	if o.Now.IsZero() {
		o.Now = defaultNow
	}
	wall := o.Now.In(newYork)
	g := &generator{
		seed:    uint64(o.Seed),
		version: o.Version,
		wallNow: time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), wall.Second(), 0, time.UTC).Unix(),
	}
	if len(o.Counties) > 0 {
		g.counties = o.Counties
		return g, nil
	}
	total := 0
	for _, p := range places {
		total += p.weight
		g.counties = append(g.counties, p.county)
		g.cumWeights = append(g.cumWeights, total)
	}
	return g, nil
}

// rng is splitmix64: tiny, fast and good enough to make test data look random.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// pct reports true with probability p percent.
func (r *rng) pct(p int) bool { return r.intn(100) < p }

// Streams of random numbers are keyed by what they describe, so a row's person does
// not change when the row's own values change, and vice versa.
const (
	streamShare  = 0x51A7E
	streamPerson = 0x9E450
	streamRow    = 0x20B0
)

func (g *generator) stream(kind uint64, i int) rng {
	r := rng{s: g.seed*0xD1B54A32D192ED03 ^ kind*0xA24BAED4963EE407 ^ uint64(i)*0x9FB21C651E98DF25}
	r.next()
	return r
}

// person returns the index of the person row i is about. About a third of rows
// repeat the person of a recent earlier row; following that chain back ends at a row
// that introduced its own person.
func (g *generator) person(i int) int {
	for i > 0 {
		r := g.stream(streamShare, i)
		if r.intn(3) != 0 {
			return i
		}
		i -= 1 + r.intn(2000)
		i = max(i, 0)
	}
	return i
}

// pick returns a random element of a table.
func pick[T any](r *rng, table []T) T { return table[r.intn(len(table))] }

// appendRow appends row i (no line ending) in g's layout.
func (g *generator) appendRow(b []byte, i int) []byte {
	p := g.person(i)
	pr := g.stream(streamPerson, p)
	r := g.stream(streamRow, i)

	// Person: the same for every row about them.
	last, first := pick(&pr, lastNames[:]), pick(&pr, firstNames[:])
	middle := ""
	if pr.pct(40) {
		middle = pick(&pr, middleNames[:])
	}
	sex := [...]string{"M", "F", "M", "F", "U"}[pr.intn(5)]
	dob := g.wallNow - int64(86400*(365*pr.intn(95)+pr.intn(365)+1))
	county := g.pickCounty(&pr)
	city, zip3 := cityOf(county, &pr)
	key := 15200000000000 + scramble(uint64(p)+g.seed, 1e11) // distinct per person
	phoneStyle, phone := pr.intn(4), pr.next()
	street, number := pick(&pr, streets[:]), 1+pr.intn(9999)
	addr2 := ""
	if pr.pct(20) {
		addr2 = pick(&pr, address2s[:])
	}
	employed, schooled := pr.pct(20), pr.pct(8)
	employer, job, school := pick(&pr, employers[:]), pick(&pr, jobTitles[:]), pr.intn(len(schools))
	employerPhone, employeeNo := pr.next(), pr.intn(1000000)

	// Test: different for every row.
	lb := pick(&r, labs[:])
	fac := pick(&r, facilities[:])
	ts := pick(&r, tests[:])
	res := pick(&r, results[:])
	collected := g.wallNow - int64(r.intn(14*86400))
	if r.pct(30) {
		collected -= collected % 86400 // date-only collection times are common
	}
	created := max(collected, min(collected+int64(3600+r.intn(40*3600)), g.wallNow-1-int64(r.intn(600))))
	observed := collected + int64(r.intn(6*3600))
	analysed := observed + int64(r.intn(12*3600))
	updated := created + int64(r.intn(3*86400))

	b = append(b, last...)
	b = append(b, '|')
	b = append(b, middle...)
	b = append(b, '|')
	b = append(b, first...)
	b = append(b, '|')
	b = appendStamp(b, dob-dob%86400, 0)
	b = append(b, '|')
	b = append(b, sex...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(number), 10)
	b = append(b, ' ')
	b = append(b, street...)
	b = append(b, '|')
	if i%700 == 699 {
		b = append(b, `"APT ""B"""`...) // a quoted value with escaped quotes, as some exports have
	} else {
		b = append(b, addr2...)
	}
	b = append(b, '|')
	b = append(b, city...)
	b = append(b, '|')
	b = append(b, zip3...)
	b = appendDigits(b, uint64(number)*37, 2)
	b = append(b, '|')
	b = strconv.AppendInt(b, county, 10)
	b = append(b, '|')
	b = appendPhone(b, phoneStyle, phone)
	b = append(b, '|')
	b = append(b, lb.pfi...)
	b = append(b, '|')
	b = append(b, lb.clia...)
	b = append(b, '|')
	if i%500 == 499 {
		b = append(b, `"ACME LABORATORIES | INC"`...) // a quoted "|", as in the original's fixtures
	} else {
		b = append(b, lb.name...)
	}
	b = append(b, '|')
	b = strconv.AppendUint(b, key, 10)
	b = append(b, '|')
	b = append(b, fac.address...)
	b = append(b, '|')
	if r.pct(10) {
		b = append(b, "SUITE "...)
		b = strconv.AppendInt(b, int64(100+r.intn(400)), 10)
	}
	b = append(b, '|')
	b = append(b, fac.city...)
	b = append(b, '|')
	if r.pct(30) {
		b = appendDigits(b, r.next(), 4)
	}
	b = append(b, '|')
	b = append(b, fac.name...)
	b = append(b, '|')
	if r.pct(80) {
		b = appendPhone(b, r.intn(4), r.next())
	}
	b = append(b, '|')
	b = append(b, fac.address...)
	b = append(b, '|')
	b = append(b, fac.city...)
	b = append(b, '|')
	b = append(b, '1')
	b = appendDigits(b, r.next(), 9) // an NPI
	b = append(b, '|')
	b = append(b, pick(&r, firstNames[:])...)
	b = append(b, '|')
	b = append(b, pick(&r, lastNames[:])...)
	b = append(b, '|')
	b = appendStamp(b, collected, 0)
	b = append(b, '|')
	b = appendStamp(b, created, r.intn(1000)*1000)
	b = append(b, '|')
	b = append(b, ts.code...)
	b = append(b, '|')
	b = append(b, ts.desc...)
	b = append(b, '|')
	b = append(b, ts.loinc...)
	b = append(b, '|')
	b = append(b, ts.loincDesc...)
	b = append(b, '|')
	b = appendStamp(b, observed, 0)
	b = append(b, '|')
	b = append(b, res.text...)
	b = append(b, '|')
	if r.pct(60) {
		b = append(b, res.short...)
	}
	b = append(b, '|')
	b = append(b, "FFFFFFFFFC"[r.intn(10)])
	b = append(b, '|')
	if r.pct(25) {
		b = append(b, lb.name...)
	}
	b = append(b, '|')
	b = append(b, res.snomed...)
	b = append(b, '|')
	b = append(b, res.snomedDesc...)
	b = append(b, '|')
	b = append(b, accessionPrefixes[lb.pfi[0]%8]...)
	b = appendDigits(b, scramble(uint64(i)+g.seed, 1e10), 10) // distinct per row
	b = append(b, '|')
	b = appendStamp(b, analysed, 0)
	b = append(b, '|')
	b = append(b, pick(&r, specimens[:])...)
	b = append(b, '|')
	b = append(b, "1520007"...)
	b = appendDigits(b, scramble(uint64(i)+g.seed, 1e7), 7)
	b = append(b, '|')
	b = appendStamp(b, updated, 0)
	b = append(b, '|')

	if g.version >= eclrs.V2 {
		if employed {
			b = append(b, employer...)
			b = append(b, '|')
			b = strconv.AppendInt(b, int64(number), 10)
			b = append(b, " COMMERCE ST|"...)
			b = appendPhone(b, 0, employerPhone)
			b = append(b, '|')
			b = append(b, '|')
			b = strconv.AppendInt(b, int64(employeeNo), 10)
			b = append(b, '|')
			b = append(b, job...)
			b = append(b, '|')
		} else {
			b = append(b, "||||||"...)
		}
		if schooled {
			s := schools[school]
			b = append(b, s.name...)
			b = append(b, '|')
			b = append(b, s.district...)
			b = append(b, '|')
			b = appendDigits(b, scramble(uint64(school)+g.seed, 1e12), 12)
			b = append(b, '|')
			b = append(b, schoolJobClasses[pr.intn(len(schoolJobClasses))]...)
			b = append(b, '|')
			b = append(b, "YN"[r.intn(2)])
			b = append(b, '|')
		} else {
			b = append(b, "|||||"...)
		}
	}
	if g.version >= eclrs.V3 {
		if r.pct(35) {
			symptomatic := pick(&r, yesNo[:])
			b = append(b, pick(&r, yesNo[:])...)
			b = append(b, '|')
			b = appendStamp(b, collected, 0)
			b = append(b, '|')
			b = append(b, pick(&r, yesNo[:])...)
			b = append(b, '|')
			b = append(b, symptomatic...)
			b = append(b, '|')
			if symptomatic == "Y" {
				b = appendStamp(b, collected-int64(86400*(1+r.intn(7))), 0)
			}
			b = append(b, '|')
			b = append(b, pick(&r, yesNo[:])...)
			b = append(b, "|N|"...)
			b = append(b, pick(&r, yesNo[:])...)
			b = append(b, '|')
			if sex == "F" {
				b = append(b, pick(&r, yesNo[:])...)
			} else {
				b = append(b, 'N')
			}
			b = append(b, '|')
		} else {
			b = append(b, "|||||||||"...)
		}
	}
	return append(b, "POSITIVE"...)
}

func (g *generator) pickCounty(r *rng) int64 {
	if g.cumWeights == nil {
		return g.counties[r.intn(len(g.counties))]
	}
	n := r.intn(g.cumWeights[len(g.cumWeights)-1])
	lo, hi := 0, len(g.cumWeights)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if g.cumWeights[mid] > n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return g.counties[lo]
}

// cityOf returns a town and ZIP prefix in county, or a random one for a county code
// that is not a New York county.
func cityOf(county int64, r *rng) (city, zip3 string) {
	if county >= 1 && county <= 123 && county%2 == 1 {
		p := places[county/2]
		return p.city, p.zip3
	}
	p := places[r.intn(len(places))]
	return p.city, p.zip3
}

var months = [12]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// appendStamp appends wall-clock seconds (civil time encoded as UTC) and
// microseconds as DDMMMYYYY:HH:MM:SS.ffffff.
func appendStamp(b []byte, wall int64, micros int) []byte {
	t := time.Unix(wall, 0).UTC()
	y, m, d := t.Date()
	hh, mm, ss := t.Clock()
	b = appendDigits(b, uint64(d), 2)
	b = append(b, months[m-1]...)
	b = appendDigits(b, uint64(y), 4)
	b = append(b, ':')
	b = appendDigits(b, uint64(hh), 2)
	b = append(b, ':')
	b = appendDigits(b, uint64(mm), 2)
	b = append(b, ':')
	b = appendDigits(b, uint64(ss), 2)
	b = append(b, '.')
	return appendDigits(b, uint64(micros), 6)
}

// appendPhone appends a ten-digit New York number in one of the styles seen in
// exports: (555) 123-4567, 555-123-4567, 5551234567 or 555.123.4567.
func appendPhone(b []byte, style int, n uint64) []byte {
	area := areaCodes[n%uint64(len(areaCodes))]
	n /= uint64(len(areaCodes))
	exchange := 200 + n%800 // exchanges never start with 0 or 1
	line := n / 800 % 10000
	switch style {
	case 0:
		b = append(b, '(')
		b = append(b, area...)
		b = append(b, ") "...)
		b = appendDigits(b, exchange, 3)
		b = append(b, '-')
	case 1:
		b = append(b, area...)
		b = append(b, '-')
		b = appendDigits(b, exchange, 3)
		b = append(b, '-')
	case 2:
		b = append(b, area...)
		b = appendDigits(b, exchange, 3)
	default:
		b = append(b, area...)
		b = append(b, '.')
		b = appendDigits(b, exchange, 3)
		b = append(b, '.')
	}
	return appendDigits(b, line, 4)
}

// scramble maps n to [0, mod), mod a power of ten, so that consecutive inputs give
// unrelated-looking outputs while distinct inputs (mod mod) stay distinct: it is a
// bijection, built from multiplications by a number coprime with 10 around a
// reversal of the decimal digits.
func scramble(n, mod uint64) uint64 {
	// 0xD1B54A32D192ED03 is odd and not a multiple of 5, so coprime with any power of ten.
	const k = 0xD1B54A32D192ED03
	mul := func(x uint64) uint64 {
		hi, lo := bits.Mul64(x, k%mod)
		return bits.Rem64(hi, lo, mod)
	}
	x, rev := mul(n%mod), uint64(0)
	for m := mod; m > 1; m /= 10 {
		rev = rev*10 + x%10
		x /= 10
	}
	return mul(rev)
}

// appendDigits appends the low width decimal digits of n, zero-padded.
func appendDigits(b []byte, n uint64, width int) []byte {
	var tmp [20]byte
	for i := width - 1; i >= 0; i-- {
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[:width]...)
}
