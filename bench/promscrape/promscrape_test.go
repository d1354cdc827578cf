package promscrape

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 12
process_resident_memory_bytes 2.4576e+07
process_cpu_seconds_total 1.25 1700000000000
shardgate_connections{shard="0"} 10
shardgate_connections{shard="1"} 5
weird{path="/a}b",q="x\"}"} 1
nan_metric NaN
`

func TestParse(t *testing.T) {
	s, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{Goroutines: 12, RSS: 24576000, CPUSeconds: 1.25, "shardgate_connections": 15, "weird": 1}
	for name, v := range want {
		if s[name] != v {
			t.Errorf("%s = %v, want %v", name, s[name], v)
		}
	}
	if !s.Has("nan_metric") || s.Has("absent") {
		t.Errorf("Has is wrong")
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"x{a=\"1\" 3\n", "novalue\n", "x abc\n", "{a=\"b\"} 1\n"} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("%q parsed without error", in)
		}
	}
}

func TestScrape(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, exposition)
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	s, err := Scrape(context.Background(), srv.Client(), srv.URL+"/metrics")
	if err != nil || s[Goroutines] != 12 {
		t.Fatalf("scrape: %v %v", s, err)
	}
	if _, err := Scrape(context.Background(), srv.Client(), srv.URL+"/nope"); !errors.Is(err, ErrStatus) {
		t.Fatalf("404: err = %v, want ErrStatus", err)
	}
}
