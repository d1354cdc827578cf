package gateway

import (
	"testing"

	"github.com/shardgate/shardgate/internal/wstest"
)

func TestSubscribePublishReceive(t *testing.T) {
	g := startGateway(t, nil)
	a := wstest.Dial(t, g.wsURL(), nil)
	b := wstest.Dial(t, g.wsURL(), nil)
	a.Subscribe("news")
	b.Subscribe("news")
	g.mustPublish("news", `{"n":1}`)
	for _, c := range []*wstest.Client{a, b} {
		m := c.Expect("message")
		if *m.Channel != "news" || string(m.Data) != `{"n":1}` {
			t.Fatalf("got %+v", m)
		}
	}
	a.Send(`{"type":"publish","channel":"news","data":[1,2],"id":7}`)
	if m := a.Expect("published"); string(m.ID) != "7" {
		t.Fatalf("ack %+v", m)
	}
	for _, c := range []*wstest.Client{a, b} {
		if m := c.Expect("message"); string(m.Data) != `[1,2]` {
			t.Fatalf("got %+v", m)
		}
	}
	a.Close()
	g.waitMetric(1, "shardgate_disconnects_total", "reason", "client_close")
}
