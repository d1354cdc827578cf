package target

import (
	"encoding/json"
	"io"
	"testing"
)

func TestEnvelopeRequests(t *testing.T) {
	tg, err := New("shardgate", Options{APIKey: "k", Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"subscribe", tg.AppendSubscribe(nil, "news", 1), `{"type":"subscribe","channel":"news","id":1}`},
		{"publish", tg.AppendPublish(nil, "a.b", []byte(`{"t":1}`), 7), `{"type":"publish","channel":"a.b","data":{"t":1},"id":7}`},
		{"escaped", tg.AppendSubscribe(nil, "q\"\n", 2), `{"type":"subscribe","channel":"q\"\u000a","id":2}`},
	}
	for _, tc := range cases {
		if string(tc.got) != tc.want || !json.Valid(tc.got) {
			t.Errorf("%s: %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if hello, ready := tg.AppendHello(nil); len(hello) != 0 || !ready {
		t.Errorf("hello = %q ready %v: shardgate needs none", hello, ready)
	}
	if h := tg.HandshakeHeader().Get("Authorization"); h != "Bearer tok" {
		t.Errorf("handshake Authorization = %q", h)
	}

	req, err := tg.NewPublishRequest("http://127.0.0.1:9090/", "news", []byte(`[1,2]`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	if req.URL.String() != "http://127.0.0.1:9090/api/publish" || req.Method != "POST" ||
		string(body) != `{"channel":"news","data":[1,2]}` || req.Header.Get("Authorization") != "Bearer k" {
		t.Errorf("publish request %s %s %s auth %q", req.Method, req.URL, body, req.Header.Get("Authorization"))
	}
	if u := tg.MetricsURL("http://127.0.0.1:9090"); u != "http://127.0.0.1:9090/metrics" {
		t.Errorf("metrics URL %s", u)
	}
}

func TestEnvelopeParse(t *testing.T) {
	tg, _ := New("gorillahub", Options{})
	cases := []struct {
		in   string
		want Event
	}{
		{`{"type":"message","channel":"news","data":{"t":5,"p":"x"}}`, Event{Kind: KindMessage, Channel: []byte("news"), Data: []byte(`{"t":5,"p":"x"}`)}},
		{`{"data":"s","type":"message"}`, Event{Kind: KindMessage, Data: []byte(`"s"`)}},
		{`{"type":"subscribed","channel":"c","id":3}`, Event{Kind: KindSubscribed, Channel: []byte("c"), ID: 3}},
		{`{"type":"published","channel":"c","id":4}`, Event{Kind: KindPublished, Channel: []byte("c"), ID: 4}},
		{`{"type":"error","id":9,"code":"rate_limited","message":"slow down"}`, Event{Kind: KindError, ID: 9, Code: "rate_limited"}},
		{`{"type":"unsubscribed","channel":"c"}`, Event{Kind: KindIgnore, Channel: []byte("c")}},
	}
	for _, tc := range cases {
		evs, err := tg.Parse([]byte(tc.in), nil)
		if err != nil || len(evs) != 1 {
			t.Errorf("%s: %v %v", tc.in, evs, err)
			continue
		}
		ev := evs[0]
		if ev.Kind != tc.want.Kind || ev.ID != tc.want.ID || ev.Code != tc.want.Code ||
			string(ev.Channel) != string(tc.want.Channel) || string(ev.Data) != string(tc.want.Data) {
			t.Errorf("%s: got %+v, want %+v", tc.in, ev, tc.want)
		}
	}
	if _, err := tg.Parse([]byte(`not json`), nil); err == nil {
		t.Error("garbage parsed without error")
	}
}

func TestUnknownTarget(t *testing.T) {
	if _, err := New("nginx", Options{}); err == nil {
		t.Fatal("unknown target accepted")
	}
}

func BenchmarkEnvelopeParse(b *testing.B) {
	tg, _ := New("shardgate", Options{})
	msg := []byte(`{"type":"message","channel":"bench.0","data":{"t":1732540000123456789,"s":42,"p":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	evs := make([]Event, 0, 4)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		evs, _ = tg.Parse(msg, evs[:0])
	}
}

func TestEnvelopeHistory(t *testing.T) {
	tg, _ := New("shardgate", Options{})
	cases := []struct {
		in        string
		offset    uint64
		hasOffset bool
		epoch     string
		recovered string
	}{
		{`{"type":"message","channel":"c","offset":18446744073709551615,"data":1}`, 1<<64 - 1, true, "", ""},
		{`{"type":"subscribed","channel":"c","id":1,"epoch":"ab12","offset":7}`, 7, true, "ab12", ""},
		{`{"type":"subscribed","channel":"c","id":1,"epoch":"ab12","offset":0,"recovered":true}`, 0, true, "ab12", "true"},
		{`{"type":"subscribed","channel":"c","id":1,"epoch":"x","offset":9,"recovered":false}`, 9, true, "x", "false"},
		{`{"type":"message","channel":"c","data":1}`, 0, false, "", ""},
	}
	for _, tc := range cases {
		evs, err := tg.Parse([]byte(tc.in), nil)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", tc.in, evs, err)
		}
		ev := evs[0]
		if ev.Offset != tc.offset || ev.HasOffset != tc.hasOffset || string(ev.Epoch) != tc.epoch || string(ev.Recovered) != tc.recovered {
			t.Errorf("%s: got offset %d (%v) epoch %q recovered %q", tc.in, ev.Offset, ev.HasOffset, ev.Epoch, ev.Recovered)
		}
	}
	got := string(AppendSubscribeRecover(nil, "news", 3, `e"1`, 42))
	if want := `{"type":"subscribe","channel":"news","id":3,"recover":{"epoch":"e\"1","offset":42}}`; got != want {
		t.Errorf("AppendSubscribeRecover: %s, want %s", got, want)
	}
}
