package e2

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// newCaseID returns a CommCare case id for a new index case: a version 7 UUID (RFC 9562), time-ordered, so that
// new ids land at the end of index_cases' unique index instead of on random pages of it as gen_random_uuid's do.
// CommCare takes any unique string as a case id; cases it creates itself keep their own.
func newCaseID(now time.Time) string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(u[6:]) // crypto/rand.Read never fails
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // variant 10
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}
