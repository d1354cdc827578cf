package gateway

// The Grafana dashboard in scripts/ names metrics inside PromQL strings,
// where no compiler looks: a renamed metric or a typo leaves a panel
// silently empty. These tests pull every metric name out of every query in
// the dashboard and check it against what a live gateway's /metrics serves.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	promdto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/shardgate/shardgate/internal/wstest"
)

// dashboardFile is the dashboard, relative to this package's directory
// (where go test runs).
const dashboardFile = "../scripts/grafana-dashboard.json"

// grafanaDashboard is the part of Grafana's dashboard JSON model the tests
// read.
type grafanaDashboard struct {
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Format     string             `json:"format"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row keeps its panels here
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Multi      bool               `json:"multi"`
	Datasource *grafanaDatasource `json:"datasource"`
	Query      json.RawMessage    `json:"query"` // a string, or {"query": "..."}
}

// queryText returns the variable's query string in either of the shapes
// Grafana has saved it in.
func (v grafanaVariable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var obj struct {
		Query string `json:"query"`
	}
	json.Unmarshal(v.Query, &obj)
	return obj.Query
}

// dashboardQuery is one PromQL expression and where the dashboard holds it.
type dashboardQuery struct {
	where string
	expr  string
}

func loadDashboard(t testing.TB) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// dashboardPanels flattens rows, including collapsed ones.
func dashboardPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, dashboardPanels(p.Panels)...)
	}
	return out
}

// queries returns every PromQL expression of the dashboard: panel targets
// and the metric selectors of label_values / query_result variables.
func (d grafanaDashboard) queries() []dashboardQuery {
	var out []dashboardQuery
	for _, p := range dashboardPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{
				where: fmt.Sprintf("panel %q (id %d) target %s", p.Title, p.ID, tg.RefID),
				expr:  tg.Expr,
			})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if expr, ok := grafanaVariableExpr(v.queryText()); ok {
			out = append(out, dashboardQuery{where: fmt.Sprintf("variable $%s", v.Name), expr: expr})
		}
	}
	return out
}

// grafanaVariableExpr returns the PromQL inside a Grafana Prometheus variable
// query: the selector of label_values(selector, label), or the expression
// of query_result(expr). Other forms (label_names(), metrics(regex)) name
// no metric.
func grafanaVariableExpr(q string) (string, bool) {
	q = strings.TrimSpace(q)
	inner, ok := strings.CutPrefix(q, "label_values(")
	if ok && strings.HasSuffix(inner, ")") {
		inner = inner[:len(inner)-1]
		if i := strings.LastIndexByte(inner, ','); i >= 0 {
			return strings.TrimSpace(inner[:i]), true
		}
		return "", false // label_values(label): no metric
	}
	if inner, ok := strings.CutPrefix(q, "query_result("); ok && strings.HasSuffix(inner, ")") {
		return inner[:len(inner)-1], true
	}
	return "", false
}

// PromQL words that are never metric names. Aggregation operators and
// keywords are matched case-insensitively, as PromQL's lexer does;
// function names are case-sensitive.
var (
	promqlAggregators = promqlWords("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio")
	promqlKeywords = promqlWords("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan")
	// promqlLabelLists are keywords followed by a parenthesised list of
	// label names.
	promqlLabelLists = promqlWords("by", "without", "on", "ignoring", "group_left", "group_right")
	promqlFunctions  = promqlWords("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh",
		"atan", "atanh", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
		"cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year",
		"days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "end", "exp",
		"first_over_time", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
		"histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
		"holt_winters", "hour", "idelta", "increase", "info", "irate", "label_join",
		"label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
		"max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
		"present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
		"sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
		"start", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
		"timestamp", "ts_of_max_over_time", "ts_of_min_over_time", "ts_of_last_over_time",
		"vector", "year")
)

func promqlWords(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func promqlIdentStart(c byte) bool {
	return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func promqlIdentChar(c byte) bool { return promqlIdentStart(c) || '0' <= c && c <= '9' }

func promqlDigit(c byte) bool { return '0' <= c && c <= '9' }

// promqlMetricNames returns the metric names expr selects, in order of
// first appearance. It is a tokenizer, not a parser: it skips strings,
// label matchers {...}, ranges and subqueries [...], numbers and
// durations, Grafana variables ($x, ${x}), label lists after by / without
// / on / ignoring / group_left / group_right, aggregation operators and
// keywords; an identifier followed by "(" must be a known function. What
// remains are metric names. A metric selected only by {__name__=...} is
// not seen.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	labelList := false // the next "(" opens a list of label names
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // comment to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := promqlSkipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := promqlSkipGroup(s, i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := promqlSkipGroup(s, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '(' && labelList:
			j, err := promqlSkipGroup(s, i, '(', ')')
			if err != nil {
				return nil, err
			}
			i, labelList = j, false
		case c == '$':
			j, err := grafanaSkipVariable(s, i)
			if err != nil {
				return nil, err
			}
			if j < len(s) && promqlIdentChar(s[j]) {
				return nil, fmt.Errorf("offset %d: a name built from a template variable cannot be checked", i)
			}
			i = j
		case promqlDigit(c) || c == '.' && i+1 < len(s) && promqlDigit(s[i+1]):
			// A number (1, 0.5, 1e3, 0x1f) or a duration (5m, 1h30m).
			for i < len(s) && (promqlIdentChar(s[i]) || s[i] == '.') {
				i++
			}
		case promqlIdentStart(c):
			j := i
			for j < len(s) && promqlIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			if j < len(s) && s[j] == '$' {
				return nil, fmt.Errorf("offset %d: a name built from a template variable cannot be checked", i)
			}
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			call := k < len(s) && s[k] == '('
			lower := strings.ToLower(word)
			switch {
			case promqlLabelLists[lower]:
				labelList = call // group_left may stand without a list
			case promqlAggregators[lower], promqlKeywords[lower]:
			case call:
				if !promqlFunctions[word] {
					return nil, fmt.Errorf("unknown function %q", word)
				}
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default: // operators, commas, parentheses, '@'
			i++
		}
	}
	return names, nil
}

// promqlSkipString returns the index just past the string literal opening at
// s[i]. Backquoted strings have no escapes.
func promqlSkipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("offset %d: unterminated string", i)
}

// promqlSkipGroup returns the index just past the group s[i] opens, skipping
// strings inside it and counting nested groups of the same kind.
func promqlSkipGroup(s string, i int, open, close byte) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			k, err := promqlSkipString(s, j)
			if err != nil {
				return 0, err
			}
			j = k - 1
		case open:
			depth++
		case close:
			if depth--; depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("offset %d: unclosed %q", i, open)
}

// grafanaSkipVariable returns the index just past the Grafana variable at s[i]:
// $name or ${name[:format]}.
func grafanaSkipVariable(s string, i int) (int, error) {
	if i+1 < len(s) && s[i+1] == '{' {
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return 0, fmt.Errorf("offset %d: unclosed ${", i)
		}
		return i + end + 1, nil
	}
	j := i + 1
	for j < len(s) && promqlIdentChar(s[j]) {
		j++
	}
	if j == i+1 {
		return 0, fmt.Errorf("offset %d: '$' without a variable name", i)
	}
	return j, nil
}

// dashboardHistogramSuffixes are the series a classic histogram family serves; a
// summary serves the bare name (quantiles), _sum and _count.
var dashboardHistogramSuffixes = []string{"_bucket", "_sum", "_count"}

// dashboardServed reports whether a query for name selects a series of families
// (metric family name → type, as /metrics exposes them). Suffixes are
// stripped only to find a histogram or summary family: a gauge "x" does not
// serve "x_count".
func dashboardServed(name string, families map[string]promdto.MetricType) bool {
	if typ, ok := families[name]; ok {
		return typ != promdto.MetricType_HISTOGRAM && typ != promdto.MetricType_GAUGE_HISTOGRAM
	}
	for _, suffix := range dashboardHistogramSuffixes {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch families[base] {
		case promdto.MetricType_HISTOGRAM, promdto.MetricType_GAUGE_HISTOGRAM:
			return true
		case promdto.MetricType_SUMMARY:
			return suffix != "_bucket"
		}
	}
	return false
}

// dashboardProblems checks every query against families and describes
// each query that does not tokenize and each metric name that is not
// served.
func dashboardProblems(queries []dashboardQuery, families map[string]promdto.MetricType) []string {
	var problems []string
	for _, q := range queries {
		if strings.TrimSpace(q.expr) == "" {
			problems = append(problems, fmt.Sprintf("%s: empty query", q.where))
			continue
		}
		names, err := promqlMetricNames(q.expr)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v in %s", q.where, err, q.expr))
			continue
		}
		if len(names) == 0 {
			problems = append(problems, fmt.Sprintf("%s: no metric in %s", q.where, q.expr))
		}
		for _, n := range names {
			if dashboardServed(n, families) {
				continue
			}
			why := "/metrics serves no such series"
			if typ, ok := families[n]; ok {
				why = fmt.Sprintf("it is a %s: query %s_bucket, _sum or _count", typ, n)
			}
			problems = append(problems, fmt.Sprintf("%s: %s (%s) in %s", q.where, n, why, q.expr))
		}
	}
	return problems
}

// scrapeFamilies returns the metric families url serves, by name.
func scrapeFamilies(t testing.TB, url string) map[string]promdto.MetricType {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	out := map[string]promdto.MetricType{}
	for {
		var mf promdto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode %s: %v", url, err)
		}
		if len(mf.GetMetric()) > 0 {
			out[mf.GetName()] = mf.GetType()
		}
	}
	return out
}

// TestDashboardQueriesServedMetrics starts a gateway, makes each kind of
// traffic the dashboard charts, and checks that every metric the dashboard
// queries is on /metrics, and that every shardgate_ metric is charted.
func TestDashboardQueriesServedMetrics(t *testing.T) {
	d := loadDashboard(t)
	queries := d.queries()
	if len(queries) == 0 {
		t.Fatalf("%s holds no queries", dashboardFile)
	}

	// On TLS, so that the TLS-only series are served too.
	ca := wstest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, time.Now().Add(time.Hour)).WritePair(t, certFile, keyFile)
	g := startGateway(t, func(c *Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	wssURL := "wss://" + g.Addr().String() + g.cfg.Path
	a := wstest.DialTLS(t, wssURL, ca.ClientConfig(), nil)
	b := wstest.DialTLS(t, wssURL, ca.ClientConfig(), nil)
	a.Subscribe("dash")
	b.Subscribe("dash")
	g.mustPublish("dash", `{"n":1}`)
	a.Expect("message")
	b.Expect("message")
	a.Send(map[string]any{"type": "publish", "channel": "dash", "data": map[string]int{"n": 2}, "id": 1})
	a.Expect("published")
	a.Expect("message")
	b.Expect("message")
	b.Close()
	waitFor(t, "two broadcasts in shardgate_broadcast_duration_seconds", func() bool {
		return g.metricSum("shardgate_broadcast_duration_seconds_count") >= 2
	})
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")

	families := scrapeFamilies(t, g.adminURL()+"/metrics")
	for _, p := range dashboardProblems(queries, families) {
		t.Error(p)
	}

	// The check must see a typo against the live families too, or the
	// loop above proves nothing.
	typo := dashboardQuery{where: "control", expr: `sum(rate(shardgate_mesages_sent_total[$__rate_interval]))`}
	if got := dashboardProblems([]dashboardQuery{typo}, families); len(got) != 1 {
		t.Errorf("a typo'd metric gave problems %q, want one", got)
	}

	queried := map[string]bool{}
	for _, q := range queries {
		names, _ := promqlMetricNames(q.expr)
		for _, n := range names {
			queried[n] = true
			for _, suffix := range dashboardHistogramSuffixes {
				if base, ok := strings.CutSuffix(n, suffix); ok {
					queried[base] = true
				}
			}
		}
	}
	for name := range families {
		if strings.HasPrefix(name, "shardgate_") && !queried[name] {
			t.Errorf("/metrics serves %s but no panel of %s charts it", name, dashboardFile)
		}
	}
}

// TestDashboardShape checks what makes the dashboard importable anywhere:
// a datasource variable every query goes through, the instance and shard
// filters, unique panel ids, and heatmap-formatted bucket queries.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (Grafana 9+ panel model)", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both set", d.UID, d.Title)
	}
	vars := map[string]grafanaVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["DS_PROMETHEUS"]; v.Type != "datasource" || v.queryText() != "prometheus" {
		t.Errorf("variable DS_PROMETHEUS: %+v, want a prometheus datasource variable", v)
	}
	for _, name := range []string{"instance", "shard"} {
		v := vars[name]
		if v.Type != "query" || !v.Multi || !strings.Contains(v.queryText(), "shardgate_connections") {
			t.Errorf("variable %s: %+v, want a multi-select label_values over shardgate_connections", name, v)
		}
	}

	const ds = "${DS_PROMETHEUS}"
	ids := map[int]string{}
	for _, p := range dashboardPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != ds {
			t.Errorf("panel %q datasource %+v, want uid %s", p.Title, p.Datasource, ds)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != ds {
				t.Errorf("panel %q target %s datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, ds)
			}
			if p.Type == "heatmap" && (tg.Format != "heatmap" || !strings.Contains(tg.Expr, "_bucket")) {
				t.Errorf("heatmap %q target %s: format %q expr %s, want format heatmap over _bucket",
					p.Title, tg.RefID, tg.Format, tg.Expr)
			}
		}
	}
}

func TestDashboardPromQLMetricNames(t *testing.T) {
	cases := []struct {
		name string
		expr string
		want []string
		err  string // substring of the error, if one is expected
	}{
		{name: "bare", expr: "go_goroutines", want: []string{"go_goroutines"}},
		{name: "colon", expr: "job:shardgate_connections:sum", want: []string{"job:shardgate_connections:sum"}},
		{name: "matchers hide label names and values",
			expr: `shardgate_connections{instance=~"$instance", shard=~"$shard", x="go_goroutines{}"}`,
			want: []string{"shardgate_connections"}},
		{name: "rate with Grafana interval",
			expr: `rate(shardgate_messages_received_total{shard=~"$shard"}[$__rate_interval])`,
			want: []string{"shardgate_messages_received_total"}},
		{name: "aggregation by before and after",
			expr: `sum by (instance, shard) (shardgate_subscriptions) + sum(shardgate_connections) without (le)`,
			want: []string{"shardgate_subscriptions", "shardgate_connections"}},
		{name: "upper-case keywords", expr: `SUM BY (shard) (shardgate_connections)`,
			want: []string{"shardgate_connections"}},
		{name: "histogram quantile",
			expr: `histogram_quantile(0.99, sum by (le) (rate(shardgate_broadcast_duration_seconds_bucket[5m])))`,
			want: []string{"shardgate_broadcast_duration_seconds_bucket"}},
		{name: "sum over count",
			expr: `sum(rate(shardgate_broadcast_duration_seconds_sum[1m])) / sum(rate(shardgate_broadcast_duration_seconds_count[1m]))`,
			want: []string{"shardgate_broadcast_duration_seconds_sum", "shardgate_broadcast_duration_seconds_count"}},
		{name: "vector matching",
			expr: `process_resident_memory_bytes / on (instance) group_left (job) (sum by (instance) (shardgate_connections) > 0)`,
			want: []string{"process_resident_memory_bytes", "shardgate_connections"}},
		{name: "group_left without a list",
			expr: `a_total * on (instance) group_left b_info`,
			want: []string{"a_total", "b_info"}},
		{name: "set operators and bool",
			expr: `shardgate_broker_connected == bool 0 and on () go_goroutines > 1e3 unless process_open_fds`,
			want: []string{"shardgate_broker_connected", "go_goroutines", "process_open_fds"}},
		{name: "offset, @ and subquery",
			expr: `max_over_time(rate(shardgate_bytes_sent_total[5m])[1h:30s] offset 1h30m) @ end()`,
			want: []string{"shardgate_bytes_sent_total"}},
		{name: "numbers", expr: `0x1f * .5 + 1.5e-3 * Inf - NaN + go_threads`, want: []string{"go_threads"}},
		{name: "strings with brackets",
			expr: `label_replace(shardgate_connections, "node", "$1", "instance", "(.*):[0-9]+")`,
			want: []string{"shardgate_connections"}},
		{name: "repeats listed once",
			expr: `shardgate_connections / shardgate_connections`, want: []string{"shardgate_connections"}},
		{name: "function name as a metric", expr: `rate`, want: []string{"rate"}},
		{name: "typo is returned as written",
			expr: `sum(rate(shardgate_mesages_sent_total[1m]))`, want: []string{"shardgate_mesages_sent_total"}},
		{name: "typo in a function", expr: `sum(rat(shardgate_messages_sent_total[1m]))`, err: `unknown function "rat"`},
		{name: "unterminated string", expr: `shardgate_connections{shard="0}`, err: "unterminated string"},
		{name: "unclosed matcher", expr: `shardgate_connections{shard="0"`, err: "unclosed"},
		{name: "metric name from a variable", expr: `rate(shardgate_${kind}_total[1m])`, err: "template variable"},
		{name: "metric name from a trailing variable", expr: `${prefix}_connections`, err: "template variable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := promqlMetricNames(tc.expr)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("promqlMetricNames(%s) = %q, %v; want error containing %q", tc.expr, got, err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("promqlMetricNames(%s) = %q, %v; want %q", tc.expr, got, err, tc.want)
			}
		})
	}
}

func TestDashboardProblems(t *testing.T) {
	families := map[string]promdto.MetricType{
		"shardgate_connections":                promdto.MetricType_GAUGE,
		"shardgate_messages_sent_total":        promdto.MetricType_COUNTER,
		"shardgate_broadcast_duration_seconds": promdto.MetricType_HISTOGRAM,
		"go_gc_duration_seconds":               promdto.MetricType_SUMMARY,
	}
	cases := []struct {
		expr    string
		problem string // substring of the one problem expected; "" for none
	}{
		{expr: `sum(shardgate_connections)`},
		{expr: `rate(shardgate_messages_sent_total[1m])`},
		{expr: `rate(shardgate_broadcast_duration_seconds_bucket[1m])`},
		{expr: `rate(shardgate_broadcast_duration_seconds_sum[1m]) / rate(shardgate_broadcast_duration_seconds_count[1m])`},
		{expr: `go_gc_duration_seconds{quantile="0.99"} + go_gc_duration_seconds_count`},
		{expr: `rate(shardgate_mesages_sent_total[1m])`, problem: "shardgate_mesages_sent_total (/metrics serves no such series)"},
		{expr: `shardgate_conections`, problem: "shardgate_conections"},
		{expr: `shardgate_broadcast_duration_seconds`, problem: "it is a HISTOGRAM"},
		{expr: `shardgate_connections_count`, problem: "shardgate_connections_count (/metrics serves no such series)"},
		{expr: `go_gc_duration_seconds_bucket`, problem: "go_gc_duration_seconds_bucket"},
		{expr: `rat(shardgate_messages_sent_total[1m])`, problem: `unknown function "rat"`},
		{expr: `vector(1)`, problem: "no metric"},
		{expr: ` `, problem: "empty query"},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			got := dashboardProblems([]dashboardQuery{{where: "panel", expr: tc.expr}}, families)
			switch {
			case tc.problem == "" && len(got) != 0:
				t.Errorf("problems %q, want none", got)
			case tc.problem != "" && (len(got) != 1 || !strings.Contains(got[0], tc.problem)):
				t.Errorf("problems %q, want one containing %q", got, tc.problem)
			}
		})
	}
}

func TestDashboardVariableExpr(t *testing.T) {
	cases := []struct {
		query string
		want  string
		ok    bool
	}{
		{`label_values(shardgate_connections, shard)`, "shardgate_connections", true},
		{`label_values(shardgate_connections{instance=~"$instance"}, shard)`, `shardgate_connections{instance=~"$instance"}`, true},
		{`query_result(topk(5, shardgate_connections))`, "topk(5, shardgate_connections)", true},
		{`label_values(instance)`, "", false},
		{`label_names()`, "", false},
	}
	for _, tc := range cases {
		got, ok := grafanaVariableExpr(tc.query)
		if got != tc.want || ok != tc.ok {
			t.Errorf("grafanaVariableExpr(%s) = %q, %v; want %q, %v", tc.query, got, ok, tc.want, tc.ok)
		}
	}
}
