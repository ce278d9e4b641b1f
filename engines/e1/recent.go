package e1

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/jackc/pgx/v5"

	"github.com/viaduct-nys/viaduct/pkg/eclrs"
)

// sumPrefix is the first 16 bytes of a row checksum, as two numbers so that hashing and comparing work on integers.
// 128 bits of SHA-256 never collide by chance among any number of rows ECLRS could send (about 10^-27 for a
// million rows against a million), so a prefix found in the last file's set is that file's row; and that row is
// still in test_results, which nothing deletes from (a retention purge strips a row to its identity, checksum kept).
type sumPrefix struct{ hi, lo uint64 }

func prefixOf(sum *[32]byte) sumPrefix { return prefixAt(sum[:]) }

// prefixAt reads a prefix from the first 16 bytes of b, as file_checksums stores it.
func prefixAt(b []byte) sumPrefix {
	return sumPrefix{binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])}
}

// lastFileSums are the checksum prefixes of the last imported file's rows (file_checksums), in an open-addressing
// hash table: a binary search over a sorted set took a fifth of a warm import, most of it waiting on memory, where
// a slot found from the prefix's first bits costs about one cache miss. A prefix stored twice is kept once.
type lastFileSums struct {
	fileID  int64
	slots   []sumPrefix // a third more than the set; the zero prefix marks an empty slot
	hasZero bool        // whether the set holds the zero prefix itself
}

// maxFileSums bounds the rows a file's set holds. ECLRS exports are about 500,000 rows; a file with more than
// 750,000 gets no set, and the import after it looks every row up in the index as before. So the sets never take
// more than about 40 MB (this file's, growing, and the last one's table), and a 2,000,000-row import after a
// 500,000-row one stays within Engine 1's 256 MB.
const maxFileSums = 750_000

// newLastFileSums builds the table of sums.
func newLastFileSums(fileID int64, sums []sumPrefix) *lastFileSums {
	l := &lastFileSums{fileID: fileID, slots: make([]sumPrefix, len(sums)+len(sums)/3+1)}
	for _, s := range sums {
		if s == (sumPrefix{}) {
			l.hasZero = true
			continue
		}
		for i := l.slot(s); ; i = l.next(i) {
			if l.slots[i] == s {
				break
			}
			if l.slots[i] == (sumPrefix{}) {
				l.slots[i] = s
				break
			}
		}
	}
	return l
}

// slot is where p's probe starts: its first 64 bits, uniformly random, scaled to the table.
func (l *lastFileSums) slot(p sumPrefix) int {
	hi, _ := bits.Mul64(p.hi, uint64(len(l.slots)))
	return int(hi)
}

// next is the slot after i, wrapping around.
func (l *lastFileSums) next(i int) int {
	if i++; i == len(l.slots) {
		return 0
	}
	return i
}

// contains reports whether sum belongs to a row of the last file.
func (l *lastFileSums) contains(sum *[32]byte) bool {
	if l == nil {
		return false
	}
	p := prefixOf(sum)
	if p == (sumPrefix{}) {
		return l.hasZero
	}
	for i := l.slot(p); ; i = l.next(i) {
		switch l.slots[i] {
		case p:
			return true
		case sumPrefix{}:
			return false
		}
	}
}

// loadLastFileSums reads the newest file_checksums row: nil when there is none (the first import, or every
// earlier one failed).
func loadLastFileSums(ctx context.Context, db eclrs.DBTX) (*lastFileSums, error) {
	var fileID int64
	var raw []byte
	err := db.QueryRow(ctx, `SELECT file_id, checksums FROM file_checksums ORDER BY file_id DESC LIMIT 1`).
		Scan(&fileID, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the last file's checksums: %w", err)
	}
	sums := make([]sumPrefix, len(raw)/16)
	for i := range sums {
		sums[i] = prefixAt(raw[16*i:])
	}
	return newLastFileSums(fileID, sums), nil
}

// saveFileSums stores the prefixes of a file's rows as the only set; it runs in the import's transaction, so the
// set names rows that are committed with it. complete is false when the file had more rows than maxFileSums: then
// the older set is dropped and none replaces it.
func saveFileSums(ctx context.Context, tx pgx.Tx, fileID int64, sums []sumPrefix, complete bool) error {
	if _, err := tx.Exec(ctx, `DELETE FROM file_checksums`); err != nil {
		return fmt.Errorf("dropping the last file's checksums: %w", err)
	}
	if !complete {
		return nil
	}
	raw := make([]byte, 0, 16*len(sums))
	for _, s := range sums {
		raw = binary.BigEndian.AppendUint64(raw, s.hi)
		raw = binary.BigEndian.AppendUint64(raw, s.lo)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO file_checksums (file_id, checksums) VALUES ($1, $2)`, fileID, raw); err != nil {
		return fmt.Errorf("storing the file's checksums: %w", err)
	}
	return nil
}
