package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// parseCase is one row of the ParseRequest table: either a wanted Request or
// a wanted error code, and in both cases the ID the reply must echo.
type parseCase struct {
	name    string
	msg     string
	want    Request // compared when code == ""
	code    string
	id      string // wanted raw ID; "" means nil
	msgPart string // optional substring of the error message
}

var parseCases = []parseCase{
	// Valid requests.
	{name: "subscribe", msg: `{"type":"subscribe","channel":"news","id":1}`,
		want: Request{Type: TypeSubscribe, Channel: "news"}, id: `1`},
	{name: "unsubscribe string id", msg: `{"type":"unsubscribe","channel":"news","id":"a-1"}`,
		want: Request{Type: TypeUnsubscribe, Channel: "news"}, id: `"a-1"`},
	{name: "publish object", msg: `{"type":"publish","channel":"news","data":{"x":[1,2]},"id":3}`,
		want: Request{Type: TypePublish, Channel: "news", Data: json.RawMessage(`{"x":[1,2]}`)}, id: `3`},
	{name: "publish null data", msg: `{"type":"publish","channel":"news","data":null}`,
		want: Request{Type: TypePublish, Channel: "news", Data: json.RawMessage(`null`)}},
	{name: "publish scalar data", msg: `{"type":"publish","channel":"n","data":-0.5e10}`,
		want: Request{Type: TypePublish, Channel: "n", Data: json.RawMessage(`-0.5e10`)}},
	{name: "publish data with tricky strings", msg: "{ \"data\" :\t[1, {\"x\":\"}]\\\"{\"}] ,\"type\":\"publish\",\"channel\":\"c\"}",
		want: Request{Type: TypePublish, Channel: "c", Data: json.RawMessage("[1, {\"x\":\"}]\\\"{\"}]")}},
	{name: "no id", msg: `{"type":"subscribe","channel":"news"}`,
		want: Request{Type: TypeSubscribe, Channel: "news"}},
	{name: "huge id verbatim", msg: `{"id":123456789012345678901234567890.000,"type":"subscribe","channel":"x"}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}, id: `123456789012345678901234567890.000`},
	{name: "escaped string id verbatim", msg: `{"id":"a\"b\u00e9","type":"subscribe","channel":"x"}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}, id: `"a\"b\u00e9"`},
	{name: "negative exp id", msg: `{"id":-1.5E+300,"type":"subscribe","channel":"x"}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}, id: `-1.5E+300`},
	{name: "unknown members ignored", msg: `{"x":{"type":"publish"},"type":"subscribe","y":[{"channel":1}],"channel":"x","z":null,"z":1}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}},
	{name: "data on subscribe ignored", msg: `{"type":"subscribe","channel":"x","data":1}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}},
	{name: "escaped member names", msg: `{"\u0074ype":"sub\u0073cribe","ch\u0061nnel":"n\u0065ws"}`,
		want: Request{Type: TypeSubscribe, Channel: "news"}},
	{name: "surrounding whitespace", msg: " \r\n\t{ \"type\" : \"subscribe\" , \"channel\" : \"x\" } \n",
		want: Request{Type: TypeSubscribe, Channel: "x"}},
	{name: "all channel chars", msg: `{"type":"subscribe","channel":"AZaz09._:@-"}`,
		want: Request{Type: TypeSubscribe, Channel: "AZaz09._:@-"}},
	{name: "128-byte channel", msg: `{"type":"subscribe","channel":"` + strings.Repeat("c", 128) + `"}`,
		want: Request{Type: TypeSubscribe, Channel: strings.Repeat("c", 128)}},

	// bad_json: nothing to echo.
	{name: "empty", msg: ``, code: CodeBadJSON},
	{name: "spaces", msg: `   `, code: CodeBadJSON},
	{name: "not json", msg: `subscribe news`, code: CodeBadJSON},
	{name: "array", msg: `[{"type":"subscribe","channel":"x"}]`, code: CodeBadJSON},
	{name: "string", msg: `"x"`, code: CodeBadJSON},
	{name: "number", msg: `1`, code: CodeBadJSON},
	{name: "null", msg: `null`, code: CodeBadJSON},
	{name: "trailing garbage", msg: `{"type":"subscribe","channel":"x","id":1} x`, code: CodeBadJSON},
	{name: "two objects", msg: `{"type":"subscribe","channel":"x","id":1}{}`, code: CodeBadJSON},
	{name: "trailing comma", msg: `{"type":"subscribe","channel":"x",}`, code: CodeBadJSON},
	{name: "unterminated", msg: `{"type":"subscribe","channel":"x"`, code: CodeBadJSON},
	{name: "single quotes", msg: `{'type':'subscribe'}`, code: CodeBadJSON},
	{name: "invalid utf-8", msg: "{\"type\":\"subscribe\",\"channel\":\"x\",\"data\":\"\xff\"}", code: CodeBadJSON},
	{name: "raw control char in string", msg: "{\"type\":\"subscribe\",\"channel\":\"a\x01\"}", code: CodeBadJSON},

	// bad_request.
	{name: "id true", msg: `{"type":"subscribe","channel":"x","id":true}`, code: CodeBadRequest, msgPart: `"id"`},
	{name: "id null", msg: `{"type":"subscribe","channel":"x","id":null}`, code: CodeBadRequest},
	{name: "id object", msg: `{"type":"subscribe","channel":"x","id":{"a":1}}`, code: CodeBadRequest},
	{name: "id array", msg: `{"type":"subscribe","channel":"x","id":[1]}`, code: CodeBadRequest},
	{name: "id bad beats bad type", msg: `{"id":false}`, code: CodeBadRequest, msgPart: `"id"`},
	{name: "missing type", msg: `{"channel":"x","id":7}`, code: CodeBadRequest, id: `7`, msgPart: `"type"`},
	{name: "empty object", msg: `{}`, code: CodeBadRequest},
	{name: "type case", msg: `{"Type":"subscribe","channel":"x","id":7}`, code: CodeBadRequest, id: `7`},
	{name: "type not string", msg: `{"type":1,"channel":"x","id":"q"}`, code: CodeBadRequest, id: `"q"`},
	{name: "type null", msg: `{"type":null,"channel":"x","id":"q"}`, code: CodeBadRequest, id: `"q"`},
	{name: "unknown type", msg: `{"type":"message","channel":"x","id":2}`, code: CodeBadRequest, id: `2`},
	{name: "type wrong case", msg: `{"type":"Subscribe","channel":"x","id":2}`, code: CodeBadRequest, id: `2`},
	{name: "missing channel", msg: `{"type":"subscribe","id":4}`, code: CodeBadRequest, id: `4`, msgPart: `"channel"`},
	{name: "missing channel publish", msg: `{"type":"publish","data":1,"id":4}`, code: CodeBadRequest, id: `4`},
	{name: "channel number", msg: `{"type":"subscribe","channel":5,"id":4}`, code: CodeBadRequest, id: `4`},
	{name: "channel null", msg: `{"type":"unsubscribe","channel":null,"id":4}`, code: CodeBadRequest, id: `4`},
	{name: "publish without data", msg: `{"type":"publish","channel":"x","id":5}`, code: CodeBadRequest, id: `5`, msgPart: `"data"`},
	{name: "duplicate type", msg: `{"type":"subscribe","type":"publish","channel":"x","id":6}`, code: CodeBadRequest, id: `6`, msgPart: "duplicate"},
	{name: "duplicate escaped type", msg: `{"type":"subscribe","\u0074ype":"subscribe","channel":"x","id":6}`, code: CodeBadRequest, id: `6`},
	{name: "duplicate channel", msg: `{"type":"subscribe","channel":"x","channel":"y","id":6}`, code: CodeBadRequest, id: `6`},
	{name: "duplicate data", msg: `{"type":"publish","channel":"x","data":1,"data":null,"id":6}`, code: CodeBadRequest, id: `6`},
	{name: "duplicate id", msg: `{"type":"subscribe","channel":"x","id":6,"id":7}`, code: CodeBadRequest},

	// bad_channel: the id is echoed.
	{name: "empty channel", msg: `{"type":"subscribe","channel":"","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "129-byte channel", msg: `{"type":"subscribe","channel":"` + strings.Repeat("c", 129) + `","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "space in channel", msg: `{"type":"publish","channel":"a b","data":1,"id":8}`, code: CodeBadChannel, id: `8`},
	{name: "slash in channel", msg: `{"type":"unsubscribe","channel":"a/b","id":"s"}`, code: CodeBadChannel, id: `"s"`},
	{name: "star in channel", msg: `{"type":"subscribe","channel":"news.*","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "non-ascii channel", msg: `{"type":"subscribe","channel":"ä","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "escaped nul in channel", msg: `{"type":"subscribe","channel":"a\u0000","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "escaped newline in channel", msg: `{"type":"subscribe","channel":"a\n","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "long escaped channel", msg: `{"type":"subscribe","channel":"` + strings.Repeat(`\u0061`, 129) + `","id":8}`, code: CodeBadChannel, id: `8`},
	{name: "escaped 128-byte channel ok", msg: `{"type":"subscribe","channel":"` + strings.Repeat(`\u0061`, 128) + `"}`,
		want: Request{Type: TypeSubscribe, Channel: strings.Repeat("a", 128)}},
	{name: "bad channel beats missing data", msg: `{"type":"publish","channel":"","id":9}`, code: CodeBadChannel, id: `9`},

	// refresh: a token, no channel.
	{name: "refresh", msg: `{"type":"refresh","token":"aGVhZA.Ym9keQ.c2ln","id":4}`,
		want: Request{Type: TypeRefresh, Token: "aGVhZA.Ym9keQ.c2ln"}, id: `4`},
	{name: "refresh escaped token", msg: `{"type":"refresh","token":"a\u002eb\/c"}`,
		want: Request{Type: TypeRefresh, Token: "a.b/c"}},
	{name: "refresh empty token is the verifier's call", msg: `{"type":"refresh","token":""}`,
		want: Request{Type: TypeRefresh}},
	{name: "refresh ignores channel and data", msg: `{"type":"refresh","channel":"no spaces allowed","data":1,"token":"t"}`,
		want: Request{Type: TypeRefresh, Token: "t"}},
	{name: "token on subscribe ignored", msg: `{"type":"subscribe","channel":"x","token":"t"}`,
		want: Request{Type: TypeSubscribe, Channel: "x"}},
	{name: "refresh without token", msg: `{"type":"refresh","id":"r"}`, code: CodeBadRequest, id: `"r"`, msgPart: `"token"`},
	{name: "refresh token number", msg: `{"type":"refresh","token":1,"id":4}`, code: CodeBadRequest, id: `4`, msgPart: `"token"`},
	{name: "refresh token null", msg: `{"type":"refresh","token":null,"id":4}`, code: CodeBadRequest, id: `4`},
	{name: "duplicate token", msg: `{"type":"refresh","token":"a","token":"b","id":4}`, code: CodeBadRequest, id: `4`, msgPart: "duplicate"},
}

func TestParseRequest(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got, perr := ParseRequest([]byte(tc.msg))
			checkID(t, got.ID, tc.id)
			if tc.code != "" {
				if perr == nil {
					t.Fatalf("ParseRequest(%q) = %+v, want error %s", tc.msg, got, tc.code)
				}
				if perr.Code != tc.code {
					t.Fatalf("ParseRequest(%q) code = %s (%s), want %s", tc.msg, perr.Code, perr.Message, tc.code)
				}
				if !strings.Contains(perr.Message, tc.msgPart) {
					t.Errorf("message %q does not mention %q", perr.Message, tc.msgPart)
				}
				return
			}
			if perr != nil {
				t.Fatalf("ParseRequest(%q) error %v", tc.msg, perr)
			}
			if got.Type != tc.want.Type || got.Channel != tc.want.Channel {
				t.Errorf("got type %v channel %q, want %v %q", got.Type, got.Channel, tc.want.Type, tc.want.Channel)
			}
			if got.Token != tc.want.Token {
				t.Errorf("got token %q, want %q", got.Token, tc.want.Token)
			}
			checkData(t, got.Data, tc.want.Data)
		})
	}
}

func checkID(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	if want == "" {
		if got != nil {
			t.Errorf("ID = %s, want nil", got)
		}
		return
	}
	if string(got) != want {
		t.Errorf("ID = %s, want %s", got, want)
	}
}

// checkData compares Data including the nil / non-nil distinction, which is
// what tells "data" absent from "data":null.
func checkData(t *testing.T, got, want json.RawMessage) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Errorf("Data = %q (nil %v), want %q (nil %v)", got, got == nil, want, want == nil)
	}
}

// TestParseRequestAliases documents that Data and ID point into the message:
// a caller reusing its buffer sees them change.
func TestParseRequestAliases(t *testing.T) {
	msg := []byte(`{"type":"publish","channel":"c","data":[1],"id":1}`)
	req, perr := ParseRequest(msg)
	if perr != nil {
		t.Fatal(perr)
	}
	copy(msg, bytes.Repeat([]byte{'x'}, len(msg)))
	if string(req.Data) != "xxx" || string(req.ID) != "x" {
		t.Errorf("Data %q, ID %q: expected them to alias the message", req.Data, req.ID)
	}
	if req.Channel != "c" {
		t.Errorf("Channel %q changed with the buffer", req.Channel)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{TypeSubscribe: "subscribe", TypeUnsubscribe: "unsubscribe", TypePublish: "publish", TypeRefresh: "refresh", 0: "", 200: ""} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", typ, got, want)
		}
	}
}

func TestValidChannel(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"news", true},
		{"a", true},
		{"AZaz09._:@-", true},
		{"user@example.com:inbox", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"a b", false},
		{"a*", false},
		{"a/b", false},
		{"a#", false},
		{"ä", false},
		{"a\x00", false},
		{"a\n", false},
	}
	for _, tc := range cases {
		if got := ValidChannel(tc.s); got != tc.want {
			t.Errorf("ValidChannel(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	for c := 0; c < 256; c++ {
		want := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-", byte(c)) >= 0
		if got := ChannelByte(byte(c)); got != want {
			t.Errorf("ChannelByte(%q) = %v, want %v", byte(c), got, want)
		}
	}
}

func TestErrorError(t *testing.T) {
	e := &Error{Code: CodeForbidden, Message: "no grant"}
	if got, want := e.Error(), "protocol: forbidden: no grant"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
