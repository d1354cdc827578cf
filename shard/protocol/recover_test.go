package protocol

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// recoverCases cover the "recover" member of a subscribe (SPEC "History
// and recovery").
var recoverCases = []struct {
	name string
	msg  string
	want *Recover // nil: no recover
	code string   // an error instead
}{
	{name: "recover", msg: `{"type":"subscribe","channel":"news","recover":{"epoch":"ab12","offset":7}}`,
		want: &Recover{Epoch: "ab12", Offset: 7}},
	{name: "members in any order, unknown ignored", msg: `{"recover":{"x":[1],"offset":0,"epoch":""},"type":"subscribe","channel":"news"}`,
		want: &Recover{Epoch: "", Offset: 0}},
	{name: "escaped epoch", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"a\u0062","offset":18446744073709551615}}`,
		want: &Recover{Epoch: "ab", Offset: math.MaxUint64}},
	{name: "absent", msg: `{"type":"subscribe","channel":"n"}`},
	{name: "ignored on unsubscribe", msg: `{"type":"unsubscribe","channel":"n","recover":5}`},
	{name: "ignored on publish", msg: `{"type":"publish","channel":"n","data":1,"recover":{}}`},
	{name: "null", msg: `{"type":"subscribe","channel":"n","recover":null}`, code: CodeBadRequest},
	{name: "a number", msg: `{"type":"subscribe","channel":"n","recover":5}`, code: CodeBadRequest},
	{name: "no epoch", msg: `{"type":"subscribe","channel":"n","recover":{"offset":5}}`, code: CodeBadRequest},
	{name: "no offset", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e"}}`, code: CodeBadRequest},
	{name: "epoch a number", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":1,"offset":5}}`, code: CodeBadRequest},
	{name: "offset a string", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":"5"}}`, code: CodeBadRequest},
	{name: "offset negative", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":-1}}`, code: CodeBadRequest},
	{name: "offset fraction", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":1.5}}`, code: CodeBadRequest},
	{name: "offset exponent", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":1e3}}`, code: CodeBadRequest},
	{name: "offset over 2^64", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":18446744073709551616}}`, code: CodeBadRequest},
	{name: "epoch too long", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"` + strings.Repeat("e", MaxEpochLen+1) + `","offset":1}}`, code: CodeBadRequest},
	{name: "offset twice", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":1,"offset":2}}`, code: CodeBadRequest},
	{name: "recover twice", msg: `{"type":"subscribe","channel":"n","recover":{"epoch":"e","offset":1},"recover":{"epoch":"e","offset":2}}`, code: CodeBadRequest},
}

func TestParseRecover(t *testing.T) {
	for _, tc := range recoverCases {
		t.Run(tc.name, func(t *testing.T) {
			req, perr := ParseRequest([]byte(tc.msg))
			if tc.code != "" {
				if perr == nil || perr.Code != tc.code {
					t.Fatalf("got %+v, %v; want error %s", req, perr, tc.code)
				}
				return
			}
			if perr != nil {
				t.Fatalf("error %v", perr)
			}
			switch {
			case tc.want == nil && req.Recover != nil:
				t.Fatalf("recover %+v, want none", req.Recover)
			case tc.want != nil && (req.Recover == nil || *req.Recover != *tc.want):
				t.Fatalf("recover %+v, want %+v", req.Recover, tc.want)
			}
		})
	}
}

func TestAppendSubscribed(t *testing.T) {
	cases := []struct {
		recover, recovered bool
		want               string
	}{
		{false, false, `{"type":"subscribed","channel":"news","id":1,"epoch":"e1","offset":42}`},
		{true, true, `{"type":"subscribed","channel":"news","id":1,"epoch":"e1","offset":42,"recovered":true}`},
		{true, false, `{"type":"subscribed","channel":"news","id":1,"epoch":"e1","offset":42,"recovered":false}`},
	}
	for _, tc := range cases {
		if got := string(AppendSubscribed(nil, "news", json.RawMessage(`1`), "e1", 42, tc.recover, tc.recovered)); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}

func TestAppendMessageAtCarriesTheOffsetBeforeTheData(t *testing.T) {
	for _, off := range []uint64{0, 9, 10, 12345, math.MaxUint64} {
		data := json.RawMessage(`{"x":"}"}`)
		out := AppendMessageAt(nil, "news", off, data)
		want := `{"type":"message","channel":"news","offset":` + strconv.FormatUint(off, 10) + `,"data":{"x":"}"}}`
		if string(out) != want {
			t.Fatalf("got %s, want %s", out, want)
		}
		if len(out) != MessageAtLen("news", off, data) {
			t.Fatalf("MessageAtLen %d, wrote %d", MessageAtLen("news", off, data), len(out))
		}
		if start := len(out) - len(data) - 1; string(out[start:len(out)-1]) != string(data) {
			t.Fatalf("data is not where the doc says: %s", out[start:])
		}
	}
}
