package e4

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// tallyInterval is how often Run logs what the jobs did: one line per interval instead of one per case keeps the
// log readable at hundreds of cases a second, and each case's outcome is in its events anyway.
const tallyInterval = 30 * time.Second

// tally counts job outcomes between two log lines.
type tally struct {
	mu     sync.Mutex
	counts map[outcome]int
}

func (t *tally) add(o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[outcome]int{}
	}
	t.counts[o]++
}

// log logs the outcomes counted since the last call, at Info when any case was handled, and resets them.
func (t *tally) log(logger *zap.Logger, since time.Duration) {
	t.mu.Lock()
	counts := t.counts
	t.counts = nil
	t.mu.Unlock()
	if len(counts) == 0 {
		return
	}
	fields := []zap.Field{zap.Duration("over", since.Round(time.Second))}
	for _, o := range []outcome{outcomePosted, outcomeUnchanged, outcomeDryRun, outcomeSnoozed, outcomeFailed, outcomeDiscarded,
		outcomeCancelled} {
		fields = append(fields, zap.Int(string(o), counts[o]))
	}
	logger.Info("case loader jobs worked", fields...)
}
