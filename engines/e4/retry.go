package e4

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// RetryPolicy spaces out the attempts of a job that failed: after failed attempt n the job waits
// Base·2^(n-1), at most Cap, give or take 10% so that jobs that failed together do not come back together. With
// the defaults (15 s, 24 h) and 20 attempts a job is retried for about 7.4 days: 15 s, 30 s, 1 m, 2 m … 17 h, then
// daily; long enough to ride out a CommCare outage over a long weekend, short enough that someone notices. Snoozes
// (rate limits) do not count as attempts.
type RetryPolicy struct {
	// Base is the wait after the first failed attempt. Defaults to 15 seconds.
	Base time.Duration
	// Cap bounds every wait. Defaults to 24 hours.
	Cap time.Duration
}

func (p *RetryPolicy) setDefaults() {
	if p.Base == 0 {
		p.Base = 15 * time.Second
	}
	if p.Cap == 0 {
		p.Cap = 24 * time.Hour
	}
}

func (p RetryPolicy) validate() error {
	if p.Base <= 0 || p.Cap < p.Base {
		return fmt.Errorf("e4: retry base %s must be positive and no longer than the retry cap %s", p.Base, p.Cap)
	}
	return nil
}

// Delay is the nominal wait after failed attempt n (1-based), before jitter.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.Cap; i++ {
		d *= 2
	}
	return min(d, p.Cap)
}

// NextRetry makes RetryPolicy a river.ClientRetryPolicy. River has already counted the failed attempt in
// job.Attempt.
func (p RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := p.Delay(max(job.Attempt, 1))
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return time.Now().Add(d + jitter)
}

var _ river.ClientRetryPolicy = RetryPolicy{}
