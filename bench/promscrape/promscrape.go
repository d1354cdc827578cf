// Package promscrape reads a server's Prometheus text-format metrics and
// adds up the samples of each metric name, which is all the load generator
// needs to compare a server before and after a run: its resident memory,
// goroutines and CPU time.
package promscrape

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Names of the standard metrics of Prometheus' Go and process collectors.
const (
	RSS        = "process_resident_memory_bytes"
	Goroutines = "go_goroutines"
	CPUSeconds = "process_cpu_seconds_total"
)

// Sample is one scrape: the sum of the samples of each metric name, over
// all label sets.
type Sample map[string]float64

// Has reports whether the scrape contained name.
func (s Sample) Has(name string) bool {
	_, ok := s[name]
	return ok
}

// maxBody bounds what one scrape reads.
const maxBody = 16 << 20

// ErrStatus is wrapped when the server answers with a status other than 200.
var ErrStatus = errors.New("promscrape: unexpected HTTP status")

// Scrape fetches url with client and parses it.
func Scrape(ctx context.Context, client *http.Client, url string) (Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("promscrape: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("promscrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil, fmt.Errorf("%w: %s from %s", ErrStatus, resp.Status, url)
	}
	return Parse(io.LimitReader(resp.Body, maxBody))
}

// Parse reads the Prometheus text exposition format (version 0.0.4):
// "name{labels} value [timestamp]" lines and "#" comments. Samples whose
// value does not parse (NaN is fine) are an error.
func Parse(r io.Reader) (Sample, error) {
	out := Sample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, rest := splitName(line)
		if len(name) == 0 {
			return nil, fmt.Errorf("promscrape: line %d: no metric name", n)
		}
		if len(rest) > 0 && rest[0] == '{' {
			end := labelsEnd(rest)
			if end < 0 {
				return nil, fmt.Errorf("promscrape: line %d: unterminated labels", n)
			}
			rest = rest[end:]
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("promscrape: line %d: no value", n)
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil {
			return nil, fmt.Errorf("promscrape: line %d: value %q: %w", n, fields[0], err)
		}
		out[string(name)] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("promscrape: %w", err)
	}
	return out, nil
}

func splitName(line []byte) (name, rest []byte) {
	i := bytes.IndexAny(line, "{ \t")
	if i < 0 {
		return line, nil
	}
	return line[:i], line[i:]
}

// labelsEnd returns the index just past the "}" closing the label set that
// starts b, skipping quoted label values (which may hold "}" and escapes).
func labelsEnd(b []byte) int {
	inQuote := false
	for i := 1; i < len(b); i++ {
		switch {
		case inQuote && b[i] == '\\':
			i++
		case b[i] == '"':
			inQuote = !inQuote
		case !inQuote && b[i] == '}':
			return i + 1
		}
	}
	return -1
}
