package report

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collectTimeout bounds a scrape's wait for a report: one is served from the cache, or read at most once per
// cacheFor whoever asks.
const collectTimeout = 5 * time.Second

// The status metrics: what the report says, for alerting on the same rules the page shows. Every daemon serving
// /metrics exports them for the whole system (they come from the database), so alert on their max() or min().
var (
	engineStateDesc = prometheus.NewDesc("viaduct_status_engine_state",
		"Each engine's state on /status: 0 ok, 1 amber (behind, or retrying), 2 red (needs a person).",
		[]string{"engine"}, nil)
	engineDaemonsDesc = prometheus.NewDesc("viaduct_status_engine_daemons",
		"Live daemons running each engine, by their heartbeats; 0 means nothing runs it.", []string{"engine"}, nil)
	oldestWaitingDesc = prometheus.NewDesc("viaduct_status_oldest_waiting_seconds",
		"How long each engine's oldest waiting item has waited (Engine 1: a file importing; 2: a test result; 3: a "+
			"changed case; 4: a case loader job); 0 when nothing waits.", []string{"engine"}, nil)
	domainsDesc = prometheus.NewDesc("viaduct_status_e5_domains",
		"CommCare domains Engine 5 reads, by state: current, behind (not current, not failing), failing.",
		[]string{"state"}, nil)
	domainFailingSinceDesc = prometheus.NewDesc("viaduct_status_e5_domain_failing_since_timestamp_seconds",
		"When each failing domain's first failed round since its last complete one started; only failing domains.",
		[]string{"domain"}, nil)
)

// Describe implements prometheus.Collector.
func (rd *Reader) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{engineStateDesc, engineDaemonsDesc, oldestWaitingDesc, domainsDesc,
		domainFailingSinceDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the report the page would show now. When there is none (the database
// never answered), it exports none of the status metrics; the engines' own metrics still go out.
func (rd *Reader) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	r, err := rd.cache.get(ctx)
	if err != nil {
		return
	}
	gauge := func(desc *prometheus.Desc, v float64, label string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, label)
	}
	for _, e := range r.Engines {
		gauge(engineStateDesc, float64(stateRank[e.State]), e.Engine)
		gauge(engineDaemonsDesc, float64(len(e.Daemons)), e.Engine)
	}
	for engine, age := range map[string]float64{"e1": r.E1.OldestImportingAge, "e2": r.E2.OldestWaitingAge,
		"e3": r.E3.OldestWaitingAge, "e4": r.E4.OldestWaitingAge} {
		gauge(oldestWaitingDesc, age, engine)
	}
	counts := map[string]float64{"current": 0, "behind": 0, "failing": 0}
	for _, d := range r.E5.Domains {
		if !d.Recent {
			continue
		}
		switch state, _ := r.domainState(d); {
		case d.LastError != "":
			counts["failing"]++
			if d.FailingSince != nil {
				gauge(domainFailingSinceDesc, float64(d.FailingSince.Unix()), d.Domain)
			}
		case state == OK:
			counts["current"]++
		default:
			counts["behind"]++
		}
	}
	for state, n := range counts {
		gauge(domainsDesc, n, state)
	}
}
