package loadgen

import (
	"strconv"
)

// Payload kinds: what fills a benchmark message's data up to its size.
const (
	// PayloadPad pads with "p":"xxxx…" (AppendData): cheap to make, and
	// compresses to almost nothing, so it says little about compression.
	PayloadPad = "pad"
	// PayloadJSON is a realistic JSON document (AppendJSONData): an order
	// book update as market-data feeds push them, which deflate shrinks
	// about as much as real JSON payloads of its size.
	PayloadJSON = "json"
)

// Payloads lists the payload kinds.
func Payloads() []string { return []string{PayloadPad, PayloadJSON} }

// AppendPayload appends the data of one benchmark message of the given
// kind (PayloadPad when empty).
func AppendPayload(dst []byte, kind string, sentUnixNano int64, seq uint64, size int) []byte {
	if kind == PayloadJSON {
		return AppendJSONData(dst, sentUnixNano, seq, size)
	}
	return AppendData(dst, sentUnixNano, seq, size)
}

// What repeats in a real feed (keys, symbols, venues) next to what does
// not (prices, sizes, counts, times).
var (
	jsonSymbols = [...]string{"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO", "JPM", "LLY",
		"V", "UNH", "XOM", "MA", "COST", "HD", "PG", "NFLX", "JNJ", "BAC", "CRM", "ABBV", "KO", "ORCL"}
	jsonVenues = [...]string{"XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG", "MEMX"}
)

// AppendJSONData appends the data of one benchmark message as a realistic
// JSON document of exactly size bytes (when size leaves room for one
// price level; otherwise as AppendData): the timestamp and sequence number
// that ParseData reads, then an order book update drawn from a generator
// seeded with seq, so that messages differ as a feed's do: the instrument,
// its last trade, and price levels on both sides (prices a few ticks
// apart, sizes in round lots, order counts), alternating bid and ask, as
// many as size holds; spaces in the last level's padding field fill the
// rest.
//
//	{"t":1732540000123456789,"s":42,"type":"book","symbol":"NVDA",
//	 "exchange":"XNAS","sequence":2688,"last":{"price":"96.37","size":225,
//	 "time":1732540000044},"levels":[{"side":"bid","price":"96.36",
//	 "size":"300","orders":3},{"side":"ask","price":"96.38",...},...],"pad":"  "}
//
// Deflate at level 1 takes 1 KiB of it to about a third, as it does real
// JSON of that size; TestJSONPayload measures it.
func AppendJSONData(dst []byte, sentUnixNano int64, seq uint64, size int) []byte {
	start := len(dst)
	rng := splitmix(seq*0x9e3779b97f4a7c15 + 1)
	sym := rng.next() % uint64(len(jsonSymbols))
	mid := int64(2000+sym*3700) + int64(rng.next()%500) // cents
	dst = append(dst, `{"t":`...)
	dst = strconv.AppendInt(dst, sentUnixNano, 10)
	dst = append(dst, `,"s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"type":"book","symbol":"`...)
	dst = append(dst, jsonSymbols[sym]...)
	dst = append(dst, `","exchange":"`...)
	dst = append(dst, jsonVenues[rng.next()%uint64(len(jsonVenues))]...)
	dst = append(dst, `","sequence":`...)
	dst = strconv.AppendUint(dst, seq*64+rng.next()%64, 10)
	dst = append(dst, `,"last":{"price":"`...)
	dst = appendCents(dst, mid)
	dst = append(dst, `","size":`...)
	dst = strconv.AppendUint(dst, (1+rng.next()%40)*25, 10)
	dst = append(dst, `,"time":`...)
	dst = strconv.AppendInt(dst, sentUnixNano/1e6-int64(rng.next()%1000), 10)
	dst = append(dst, `},"levels":[`...)
	const tail = len(`],"pad":""}`)
	bid, ask := mid, mid
	var level [128]byte
	n := 0
	for ; ; n++ {
		lv := level[:0]
		if n > 0 {
			lv = append(lv, ',')
		}
		side := "bid"
		price := &bid
		if n%2 == 1 {
			side, price = "ask", &ask
		}
		step := 1 + int64(rng.next()%3)
		if side == "bid" {
			*price -= step
		} else {
			*price += step
		}
		lv = append(lv, `{"side":"`...)
		lv = append(lv, side...)
		lv = append(lv, `","price":"`...)
		lv = appendCents(lv, *price)
		lv = append(lv, `","size":"`...)
		lv = strconv.AppendUint(lv, (1+rng.next()%20)*100, 10)
		lv = append(lv, `","orders":`...)
		lv = strconv.AppendUint(lv, 1+rng.next()%12, 10)
		lv = append(lv, '}')
		if len(dst)-start+len(lv)+tail > size {
			break
		}
		dst = append(dst, lv...)
	}
	if n == 0 {
		return AppendData(dst[:start], sentUnixNano, seq, size)
	}
	dst = append(dst, `],"pad":"`...)
	for len(dst)-start+2 < size {
		dst = append(dst, ' ')
	}
	return append(dst, `"}`...)
}

// appendCents appends c cents as a decimal price: 9637 → "96.37".
func appendCents(dst []byte, c int64) []byte {
	dst = strconv.AppendInt(dst, c/100, 10)
	return append(dst, '.', byte('0'+c/10%10), byte('0'+c%10))
}

// splitmix is a small deterministic generator (SplitMix64): payloads
// need variety, not secrecy.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	x := uint64(*s)
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
