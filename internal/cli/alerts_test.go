package cli

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/viaduct-nys/viaduct/pkg/casedb"
	"github.com/viaduct-nys/viaduct/pkg/commcare/commcaretest"
	"github.com/viaduct-nys/viaduct/pkg/countylist"
	"github.com/viaduct-nys/viaduct/pkg/pgtest"
)

// The alerting and the dashboard shipped in deploy/ (README, "Operations").
const (
	alertRulesFile = "../../deploy/prometheus/viaduct-alerts.yml"
	dashboardFile  = "../../deploy/grafana/viaduct-dashboard.json"
)

// alertRules is the part of a Prometheus rules file the test reads.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// metricName finds the Viaduct metrics a PromQL expression uses.
var metricName = regexp.MustCompile(`\bviaduct_[a-z0-9_]+\b`)

// alertExprs reads the alert rules and returns each alert's expression by name, checking each is complete: an
// expression, a severity (page or ticket), a summary.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(alertRulesFile)
	require.NoError(t, err)
	var rules alertRules
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s: a rule without a name", g.Name)
			require.NotContains(t, exprs, r.Alert, "two alerts named %s", r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.Contains(t, []string{"page", "ticket"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			if r.For != "" {
				_, err := time.ParseDuration(r.For)
				require.NoError(t, err, r.Alert)
			}
			exprs[r.Alert] = r.Expr
		}
	}
	return exprs
}

// dashboardExprs reads the Grafana dashboard and returns every query in it, by panel title.
func dashboardExprs(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"` // a collapsed row's
	}
	var dash struct {
		Title  string            `json:"title"`
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.UID)
	exprs := map[string][]string{}
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, r := range panels {
			var p panel
			require.NoError(t, json.Unmarshal(r, &p))
			for _, target := range p.Targets {
				require.NotEmpty(t, target.Expr, p.Title)
				exprs[p.Title] = append(exprs[p.Title], target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return exprs
}

// TestAlertsAndDashboardUseExportedMetrics runs every engine in one `viaduct run` on the stand-ins, with CommCare
// failing one domain's case list for good and rate limiting another's once, and checks that every Viaduct metric
// the alert rules and the dashboard use is on that daemon's /metrics. A histogram counts by its _bucket, _sum and
// _count series, which are what PromQL reads.
func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	used := map[string][]string{} // metric → where it is used
	for alert, expr := range alertExprs(t) {
		for _, name := range metricName.FindAllString(expr, -1) {
			used[name] = append(used[name], "alert "+alert)
		}
	}
	for title, exprs := range dashboardExprs(t) {
		for _, expr := range exprs {
			for _, name := range metricName.FindAllString(expr, -1) {
				used[name] = append(used[name], "panel "+title)
			}
		}
	}
	require.NotEmpty(t, used)

	env, res := announceGeneratedExport(t, "alerts", 40, 15)
	db := pgtest.New(t)
	fake := commcaretest.StartTest(t, commcaretest.Options{})
	list, err := countylist.NewList(commcaretest.NewYorkCounties())
	require.NoError(t, err)
	participating := list.Participating()
	require.GreaterOrEqual(t, len(participating), 2)
	failing, limited := participating[0].Domain, participating[1].Domain
	fake.Fail(http.MethodGet, "/a/"+failing+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusForbidden})
	fake.Fail(http.MethodGet, "/a/"+limited+"/api/v0.5/case/", commcaretest.Fault{Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"1"}}, Times: 1})

	p := startViaduct(t, append(append(daemonEnv(env, db), commCareEnv(fake)...), "COMMCARE_USER_ID=viaduct-test-user"),
		"run", "--e1", "--e2", "--e3", "--e4", "--e5", "--http-addr", "127.0.0.1:0", "--sqs-queue-url", res.QueueURL,
		"--e2-poll-interval", "100ms", "--e3-idle-poll-interval", "100ms", "--e3-busy-poll-interval", "1ms",
		"--e5-interval", "1s")
	addr, _ := p.waitLog(t, "serving the status page, River UI, metrics, health and readiness", time.Minute)["addr"].(string)
	require.NotEmpty(t, addr)
	require.Eventually(t, func() bool {
		var posted, failingMarks int
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = $1`, casedb.EventSendToCommCareSucceeded).
			Scan(&posted)
		_ = db.Pool.QueryRow(ctx, `SELECT count(*) FROM commcare_sync_marks WHERE domain = $1 AND failing_since IS NOT NULL`,
			failing).Scan(&failingMarks)
		return posted > 0 && failingMarks > 0 && fake.FaultsInjected()[commcaretest.FaultExplicit] >= 2
	}, 2*time.Minute, 100*time.Millisecond, "cases posted, a domain failing, another rate limited")

	code, body := get(t, "http://"+addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	exported := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if m := sample.FindStringSubmatch(sc.Text()); m != nil {
			exported[m[1]] = true
		}
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, p.waitExit(t, 30*time.Second), "log:\n%s", p.logText())

	var missing []string
	for name, where := range used {
		if !exported[name] {
			slices.Sort(where)
			missing = append(missing, name+" (used by "+strings.Join(slices.Compact(where), ", ")+")")
		}
	}
	slices.Sort(missing)
	require.Empty(t, missing, "metrics the alerts or the dashboard use that a running daemon does not export")
	t.Logf("%d metrics used, all exported", len(used))
}
