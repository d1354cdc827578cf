package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParseRequest feeds arbitrary messages to ParseRequest. It must never
// panic; what it accepts must honour the Request contract and agree with
// encoding/json's reading of the same message; and every reply built from
// what it returns — ack or error — must be valid JSON.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.msg))
	}
	for _, s := range []string{
		`{"type":"publish","channel":"a","data":{"deep":[[[[{"x":"\"}"}]]]]}}`,
		`{"type":"subscribe","channel":"a","id":1e999}`,
		`{"type":"subscribe","channel":"a","id":"\ud800"}`,
		`{"type":"publish","channel":"a","data":"\u0000"}`,
		`{"type":"\u0070ublish","channel":"\u0061","data":true,"id":-0}`,
		`{"type":"refresh","token":"\ud800\u0041","id":"r"}`,
		`{"type":"subscribe","channel":"a","recover":{"epoch":"e\u0031","offset":18446744073709551615}}`,
		`{"type":"subscribe","channel":"a","recover":{"epoch":"e","offset":01}}`,
		`{"type":"subscribe","channel":"a","recover":{"offset":1,"epoch":"","offset":2}}`,
		"{\"type\":\"subscribe\",\"channel\":\"a\"}\x00",
		`{"":1,"\\":2,"type":"subscribe","channel":"x"}`,
		`{{}`, `{"a"}`, `{"a":}`, `{"type":"subscribe"`, `{"type":"subscribe","channel":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		orig := bytes.Clone(msg)
		req, perr := ParseRequest(msg)
		if !bytes.Equal(msg, orig) {
			t.Fatalf("ParseRequest modified its input")
		}
		if req.ID != nil {
			if !json.Valid(req.ID) || (req.ID[0] != '"' && !isNumber(req.ID)) {
				t.Fatalf("ID %q is not a JSON number or string", req.ID)
			}
		}
		if perr != nil {
			switch perr.Code {
			case CodeBadJSON, CodeBadRequest, CodeBadChannel:
			default:
				t.Fatalf("unexpected code %q", perr.Code)
			}
			if out := AppendError(nil, req.ID, perr); !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("AppendError output invalid: %s", out)
			}
			if perr.Code != CodeBadJSON {
				// encoding/json must agree that this is an object.
				var m map[string]json.RawMessage
				if err := json.Unmarshal(msg, &m); err != nil {
					t.Fatalf("%s for a message encoding/json rejects: %v", perr.Code, err)
				}
			}
			return
		}

		switch req.Type {
		case TypeSubscribe, TypeUnsubscribe:
			if req.Data != nil {
				t.Fatalf("Data set for %v", req.Type)
			}
		case TypePublish:
			if req.Data == nil || !json.Valid(req.Data) {
				t.Fatalf("publish Data %q is not valid JSON", req.Data)
			}
		case TypeRefresh:
			if req.Data != nil || req.Channel != "" {
				t.Fatalf("refresh with Data %q, Channel %q", req.Data, req.Channel)
			}
		default:
			t.Fatalf("success with Type %d", req.Type)
		}
		if req.Type != TypeRefresh && req.Token != "" {
			t.Fatalf("Token %q set for %v", req.Token, req.Type)
		}
		if req.Type != TypeRefresh && !ValidChannel(req.Channel) {
			t.Fatalf("success with invalid channel %q", req.Channel)
		}

		// Differential check against encoding/json. A map keeps the last of
		// duplicate members, and ParseRequest refuses duplicates, so the two
		// readings must agree exactly.
		var m map[string]json.RawMessage
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("accepted a message encoding/json rejects: %v", err)
		}
		var typ, ch string
		if json.Unmarshal(m["type"], &typ) != nil || typ != req.Type.String() {
			t.Fatalf("type %q, encoding/json says %s", req.Type, m["type"])
		}
		if req.Type == TypeRefresh {
			var tok string
			if json.Unmarshal(m["token"], &tok) != nil || tok != req.Token {
				t.Fatalf("token %q, encoding/json says %s", req.Token, m["token"])
			}
		} else if json.Unmarshal(m["channel"], &ch) != nil || ch != req.Channel {
			t.Fatalf("channel %q, encoding/json says %s", req.Channel, m["channel"])
		}
		if req.Type == TypePublish && !jsonEqual(req.Data, m["data"]) {
			t.Fatalf("data %s, encoding/json says %s", req.Data, m["data"])
		}
		if req.Recover != nil {
			// encoding/json reads the same position (it keeps the last
			// of duplicate members; ParseRequest refuses them).
			var rec struct {
				Epoch  *string `json:"epoch"`
				Offset *uint64 `json:"offset"`
			}
			if req.Type != TypeSubscribe {
				t.Fatalf("recover on %v", req.Type)
			}
			if err := json.Unmarshal(m["recover"], &rec); err != nil || rec.Epoch == nil || rec.Offset == nil ||
				*rec.Epoch != req.Recover.Epoch || *rec.Offset != req.Recover.Offset {
				t.Fatalf("recover %+v, encoding/json says %s (%v)", req.Recover, m["recover"], err)
			}
		} else if req.Type == TypeSubscribe && m["recover"] != nil {
			t.Fatalf("recover %s accepted but dropped", m["recover"])
		}
		if !bytes.Equal(bytes.TrimSpace(m["id"]), req.ID) {
			t.Fatalf("id %s, encoding/json says %s", req.ID, m["id"])
		}

		for _, out := range [][]byte{
			AppendAck(nil, req.Type, req.Channel, req.ID),
			AppendRefreshed(nil, req.ID, int64(len(msg))),
			AppendUnsubscribed(nil, req.Channel, string(msg)),
			AppendMessage(nil, req.Channel, req.Data),
			AppendMessageAt(nil, req.Channel, uint64(len(msg)), req.Data),
			AppendSubscribed(nil, req.Channel, req.ID, string(msg), uint64(len(msg)), true, len(msg)%2 == 0),
			AppendError(nil, req.ID, &Error{CodeForbidden, string(msg)}),
		} {
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("reply is not valid JSON: %s", out)
			}
		}
	})
}

// jsonEqual compares two JSON texts after compaction (encoding/json's
// RawMessage may keep insignificant whitespace differently at the edges).
func jsonEqual(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// FuzzAppendMessage checks the encoder against arbitrary channels and data:
// MessageLen is always exact, and valid JSON data always yields a valid JSON
// message carrying that channel and data.
func FuzzAppendMessage(f *testing.F) {
	f.Add("news", []byte(`{"a":1}`))
	f.Add("", []byte(`null`))
	f.Add("\x00\"\\\xff\u2028", []byte(`"x"`))
	f.Add("a", []byte{})
	f.Fuzz(func(t *testing.T, channel string, data []byte) {
		out := AppendMessage([]byte("pre"), channel, data)
		if len(out)-3 != MessageLen(channel, data) {
			t.Fatalf("MessageLen %d, wrote %d", MessageLen(channel, data), len(out)-3)
		}
		off := uint64(len(channel)) << (len(data) % 64)
		if at := AppendMessageAt(nil, channel, off, data); len(at) != MessageAtLen(channel, off, data) {
			t.Fatalf("MessageAtLen %d, wrote %d", MessageAtLen(channel, off, data), len(at))
		}
		out = out[3:]
		if len(data) > 0 && (!json.Valid(data) || !utf8.Valid(data)) {
			return // garbage in is copied verbatim; nothing to check
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("invalid output %q", out)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		if channel != "" && utf8.ValidString(channel) {
			var got string
			if json.Unmarshal(m["channel"], &got) != nil || got != channel {
				t.Fatalf("channel %q round-tripped to %s", channel, m["channel"])
			}
		}
		if len(data) > 0 && !jsonEqual(m["data"], data) {
			t.Fatalf("data %q round-tripped to %q", data, m["data"])
		}
	})
}
