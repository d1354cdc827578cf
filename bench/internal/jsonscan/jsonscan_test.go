package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

type field struct{ key, value string }

func collect(t testing.TB, b []byte) ([]field, error) {
	t.Helper()
	var out []field
	err := Fields(b, func(k, v []byte) bool {
		out = append(out, field{string(k), string(v)})
		return true
	})
	return out, err
}

func TestFields(t *testing.T) {
	cases := []struct {
		in   string
		want []field
	}{
		{`{}`, nil},
		{` { } `, nil},
		{`{"type":"message","channel":"news","data":{"a":[1,"}"],"b":"x\"y"}}`,
			[]field{{"type", `"message"`}, {"channel", `"news"`}, {"data", `{"a":[1,"}"],"b":"x\"y"}`}}},
		{`{ "id" : 12 , "ok" : true, "n": null, "f": -1.5e3 }`,
			[]field{{"id", "12"}, {"ok", "true"}, {"n", "null"}, {"f", "-1.5e3"}}},
		{`{"a\"b":"\\"}`, []field{{`a\"b`, `"\\"`}}},
	}
	for _, tc := range cases {
		got, err := collect(t, []byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: field %d = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestFieldsErrors(t *testing.T) {
	for _, in := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1`, `{"a":1 "b":2}`, `{"a":"x`, `{"a":{"b":1}`, `{a:1}`, `{"a":"\`} {
		if _, err := collect(t, []byte(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: err = %v, want ErrSyntax", in, err)
		}
	}
}

func TestStopEarly(t *testing.T) {
	n := 0
	err := Fields([]byte(`{"a":1,"b":2,"c":3}`), func(k, v []byte) bool { n++; return string(k) != "b" })
	if err != nil || n != 2 {
		t.Fatalf("n=%d err=%v", n, err)
	}
}

func TestUnquoteAndInt(t *testing.T) {
	if s, ok := Unquote([]byte(`"news"`)); !ok || string(s) != "news" {
		t.Errorf("Unquote: %q %v", s, ok)
	}
	for _, bad := range []string{`news`, `"a\"b"`, `"`} {
		if _, ok := Unquote([]byte(bad)); ok {
			t.Errorf("Unquote(%s) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"0": 0, "1732540000123456789": 1732540000123456789, "-42": -42} {
		if n, ok := Int([]byte(in)); !ok || n != want {
			t.Errorf("Int(%s) = %d %v", in, n, ok)
		}
	}
	for _, bad := range []string{"", "-", "1.5", "12345678901234567890", "1e3"} {
		if _, ok := Int([]byte(bad)); ok {
			t.Errorf("Int(%q) accepted", bad)
		}
	}
}

// FuzzFields: never panics; on every object encoding/json accepts, it
// yields the same keys and values.
func FuzzFields(f *testing.F) {
	f.Add([]byte(`{"type":"message","channel":"c","data":{"t":1,"p":"xx"}}`))
	f.Add([]byte(`{"a":[{"b":"]"}],"c":"\u00e9"}`))
	f.Add([]byte(`{"push":{"channel":"c","pub":{"data":{}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := collect(t, b)
		var want map[string]json.RawMessage
		if json.Unmarshal(b, &want) != nil || bytes.Contains(b, []byte(`\`)) {
			return // keys with escapes are compared raw, not decoded
		}
		if err != nil {
			t.Fatalf("valid object %q rejected: %v", b, err)
		}
		keys := map[string]bool{}
		for _, fl := range got {
			keys[fl.key] = true
			if !bytes.Equal(bytes.TrimSpace(want[fl.key]), []byte(fl.value)) && !duplicated(got, fl.key) {
				t.Fatalf("%q: field %s = %s, encoding/json says %s", b, fl.key, fl.value, want[fl.key])
			}
		}
		if len(keys) != len(want) {
			t.Fatalf("%q: %d keys, encoding/json finds %d", b, len(keys), len(want))
		}
	})
}

func duplicated(fs []field, key string) bool {
	n := 0
	for _, f := range fs {
		if f.key == key {
			n++
		}
	}
	return n > 1
}
