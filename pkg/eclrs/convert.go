package eclrs

import (
	"sync/atomic"
	"time"
	_ "time/tzdata" // ECLRS times are New York wall clock; do not depend on the host's zoneinfo
)

// newYork is the zone ECLRS timestamps are written in. Loading cannot fail with the
// embedded tzdata; the panic only guards against a broken toolchain.
var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("eclrs: loading America/New_York: " + err.Error())
	}
	return loc
}()

// parseMonth reads a three-letter English month abbreviation in any case.
func parseMonth(s string) (time.Month, bool) {
	if len(s) != 3 {
		return 0, false
	}
	// Lower-case ASCII letters by setting bit 0x20 (only letters can then match) and
	// pack the three bytes, so the lookup is an integer switch.
	k := uint32(s[0]|0x20)<<16 | uint32(s[1]|0x20)<<8 | uint32(s[2]|0x20)
	switch k {
	case 'j'<<16 | 'a'<<8 | 'n':
		return time.January, true
	case 'f'<<16 | 'e'<<8 | 'b':
		return time.February, true
	case 'm'<<16 | 'a'<<8 | 'r':
		return time.March, true
	case 'a'<<16 | 'p'<<8 | 'r':
		return time.April, true
	case 'm'<<16 | 'a'<<8 | 'y':
		return time.May, true
	case 'j'<<16 | 'u'<<8 | 'n':
		return time.June, true
	case 'j'<<16 | 'u'<<8 | 'l':
		return time.July, true
	case 'a'<<16 | 'u'<<8 | 'g':
		return time.August, true
	case 's'<<16 | 'e'<<8 | 'p':
		return time.September, true
	case 'o'<<16 | 'c'<<8 | 't':
		return time.October, true
	case 'n'<<16 | 'o'<<8 | 'v':
		return time.November, true
	case 'd'<<16 | 'e'<<8 | 'c':
		return time.December, true
	}
	return 0, false
}

// digits parses s, which must be all ASCII digits, as a non-negative integer.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the number of days in month m of year y (proleptic Gregorian).
func daysIn(y int, m time.Month) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// parseDay reads the DDMMMYYYY prefix shared by dates of birth and timestamps. Year 0
// is refused: Postgres has no year 0, so such a value could never be stored.
func parseDay(s string) (y int, m time.Month, d int, ok bool) {
	if len(s) < 9 {
		return 0, 0, 0, false
	}
	d, ok1 := digits(s[0:2])
	m, ok2 := parseMonth(s[2:5])
	y, ok3 := digits(s[5:9])
	if !ok1 || !ok2 || !ok3 || y == 0 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

// ParseDOB parses a date of birth: the first 9 characters as DDMMMYYYY (month in any
// case, e.g. "01MAR1947:00:00:00.000000" → 1947-03-01), ignoring the rest. It returns
// midnight UTC of that date. Anything shorter, or an invalid day, month or year,
// gives false: the original stored NULL without an error.
func ParseDOB(s string) (time.Time, bool) {
	y, m, d, ok := parseDay(s)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), true
}

// timestampLen is the length of DDMMMYYYY:HH:MM:SS.ffffff.
const timestampLen = 25

// ParseTimestamp parses an ECLRS timestamp, DDMMMYYYY:HH:MM:SS.ffffff with exactly six
// fraction digits (anything after them is ignored), written as New York wall-clock
// time, and returns the instant in UTC. In the autumn's repeated hour it picks the
// later instant (standard time), as the original did since Nov 2021; a time inside the
// spring-forward gap becomes the first instant after the gap (03:00 EDT). Any other
// shape, or an invalid calendar value, gives false: the original stored NULL.
func ParseTimestamp(s string) (time.Time, bool) {
	sec, usec, ok := parseStamp(s)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(sec, usec*1000).UTC(), true
}

// parseStamp is ParseTimestamp returning Unix seconds and microseconds, which is all
// the COPY encoder needs.
func parseStamp(s string) (sec, usec int64, ok bool) {
	wall, usec, ok := parseWall(s)
	if !ok {
		return 0, 0, false
	}
	return newYorkInstant(wall), usec, true
}

// parseWall reads an ECLRS timestamp as wall-clock seconds (civil time encoded as if
// the zone were UTC; the real instant is wall - offset) and microseconds.
func parseWall(s string) (wall, usec int64, ok bool) {
	if len(s) < timestampLen || s[9] != ':' || s[12] != ':' || s[15] != ':' || s[18] != '.' {
		return 0, 0, false
	}
	y, mon, d, ok := parseDay(s)
	if !ok {
		return 0, 0, false
	}
	hh, ok1 := digits(s[10:12])
	mm, ok2 := digits(s[13:15])
	ss, ok3 := digits(s[16:18])
	us, ok4 := digits(s[19:25])
	if !ok1 || !ok2 || !ok3 || !ok4 || hh > 23 || mm > 59 || ss > 59 {
		return 0, 0, false
	}
	return daysFromCivil(y, mon, d)*secondsPerDay + int64(hh*3600+mm*60+ss), int64(us), true
}

const secondsPerDay = 86400

// daysFromCivil returns the number of days from 1970-01-01 to y-m-d (proleptic
// Gregorian, y >= 0), after Howard Hinnant's days_from_civil.
func daysFromCivil(y int, m time.Month, d int) int64 {
	yy := int64(y)
	if m <= time.February {
		yy--
	}
	era := floorDiv(yy, 400)
	yoe := yy - era*400
	mp := (int64(m) + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int, m time.Month, d int) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = time.Month(mp + 3)
	} else {
		m = time.Month(mp - 9)
	}
	yy := yoe + era*400
	if m <= time.February {
		yy++
	}
	return int(yy), m, d
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// offsetAt returns New York's UTC offset in seconds at the instant unix.
func offsetAt(unix int64) int64 {
	_, off := time.Unix(unix, 0).In(newYork).Zone()
	return int64(off)
}

// dayOffsets caches New York's UTC offset per wall-clock day on which it does not
// change: an export's timestamps crowd into a few weeks, and a zone lookup costs
// more than the rest of parsing a timestamp. Entries are written and read
// atomically, so concurrent imports share the cache; a slot holds one day, tagged
// with the day so a collision is only a miss.
var dayOffsets [1024]atomic.Uint64

const (
	offsetBits = 20      // offsets (at most a day, in seconds) are stored biased by 1<<19
	dayBias    = 1 << 40 // keeps the stored day positive
)

// newYorkInstant converts wall-clock seconds (civil time encoded as if UTC) in New
// York into Unix seconds. time.Date does not promise which instant it picks for
// ambiguous or missing times, so the choice is made here.
func newYorkInstant(wall int64) int64 {
	day := floorDiv(wall, secondsPerDay)
	slot := &dayOffsets[day&(int64(len(dayOffsets))-1)]
	if e := slot.Load(); e != 0 && e>>offsetBits == uint64(day+dayBias) {
		return wall - (int64(e&(1<<offsetBits-1)) - 1<<(offsetBits-1))
	}
	// A wall-clock day's instants lie within a day either side of its midnight read
	// as UTC, and New York changes offset at most twice a year; if the offsets a day
	// before and two days after agree, they hold for the whole day.
	start := day * secondsPerDay
	if off := offsetAt(start - secondsPerDay); off == offsetAt(start+2*secondsPerDay) {
		slot.Store(uint64(day+dayBias)<<offsetBits | uint64(off+1<<(offsetBits-1)))
		return wall - off
	}
	return newYorkInstantNearTransition(wall)
}

// newYorkWallExists reports whether wall-clock seconds wall happen in New York, that
// is whether the instant newYorkInstant picks reads back as wall: false only inside
// the spring-forward gap. A time in the autumn's repeated hour exists (it reads back
// from either instant).
func newYorkWallExists(wall int64) bool {
	u := newYorkInstant(wall) // caches the day's offset when it holds all day
	day := floorDiv(wall, secondsPerDay)
	if e := dayOffsets[day&(int64(len(dayOffsets))-1)].Load(); e != 0 && e>>offsetBits == uint64(day+dayBias) {
		return true
	}
	return u+offsetAt(u) == wall
}

// newYorkInstantNearTransition is newYorkInstant for the days around a change of
// offset.
func newYorkInstantNearTransition(wall int64) int64 {
	before, after := offsetAt(wall-secondsPerDay), offsetAt(wall+secondsPerDay)
	if before == after {
		return wall - before
	}
	// The smaller (more westerly) offset gives the later instant: try it first, so a
	// repeated hour resolves to standard time.
	lo, hi := min(before, after), max(before, after)
	if u := wall - lo; offsetAt(u) == lo {
		return u
	}
	if u := wall - hi; offsetAt(u) == hi {
		return u
	}
	// In the gap: neither offset gives back this wall time. The transition lies
	// between the two candidates; the instant it happens is the first one after
	// the gap.
	_, end := time.Unix(wall-hi, 0).In(newYork).ZoneBounds()
	return end.Unix()
}

// NormalizePhone keeps only the ASCII digits of a phone number: "(555) 123-4567" →
// "5551234567". There is no length check and no country prefix, as in the original.
func NormalizePhone(s string) string {
	n := countDigits(s)
	if n == len(s) {
		return s
	}
	return string(appendDigits(make([]byte, 0, n), s))
}

// appendDigits appends the ASCII digits of s to dst.
func appendDigits(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			dst = append(dst, c)
		}
	}
	return dst
}
