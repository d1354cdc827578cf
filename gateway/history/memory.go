package history

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unsafe"
)

// MemoryConfig bounds a Memory store.
type MemoryConfig struct {
	Size     int           // messages kept per channel (at least 1)
	TTL      time.Duration // how long a message is kept (positive)
	MaxBytes int64         // all channels together, oldest first past it
	// Now is the clock; nil means time.Now. Tests move it by hand.
	Now func() time.Time
}

// Memory is the history of one node: a bounded ring of messages per
// channel, kept for a TTL, under one node-wide byte cap that evicts the
// oldest message first whatever its channel. The epoch is random and new
// at every start, since the history does not survive the process.
//
// Offsets come from one node-wide sequence: they grow within each channel
// (by more than one when other channels publish in between), and a channel
// forgotten entirely and published again can never reuse an old offset.
//
// Memory's lock is a leaf (see the lock order in package gateway): Append
// runs its encode callback under it, and nothing else is called there;
// callbacks of reads run after it is released.
type Memory struct {
	size     int
	ttl      int64
	maxBytes int64
	now      func() time.Time
	epoch    string

	mu       sync.Mutex
	seq      uint64 // the last offset handed out
	bytes    int64  // charged for held messages and channels
	count    int    // messages held
	channels map[string]*channelLog
	// oldest..newest: every held message in append order, which is
	// offset order, so the head is what expiry and the byte cap evict.
	oldest, newest *entry
	// idle: channels that hold no message but remember their latest
	// offset, in the order they emptied; the byte cap forgets them too,
	// oldest first, when they are older than every message.
	idleHead, idleTail *channelLog
	// forgotten is the highest latest offset of any channel forgotten
	// whole: a channel not in the map may have had messages up to it.
	forgotten uint64
}

// entry is one held message: its frame is shared with every connection
// it was broadcast to; Data is the frame's tail, not a copy.
type entry struct {
	offset     uint64
	frame      []byte
	dataStart  int32 // Data is frame[dataStart : len(frame)-1]
	at         int64 // Unix nanoseconds at append, for the TTL
	log        *channelLog
	prev, next *entry
}

// channelLog is one channel's held messages, oldest first.
type channelLog struct {
	name    string
	last    uint64   // the channel's latest offset, kept when it holds nothing
	trimmed uint64   // every offset at or below this may have been dropped
	msgs    []*entry // msgs[head:] are held
	head    int
	idleAt  int64 // Unix nanoseconds when the channel emptied
	// idlePrev and idleNext link the channel into Memory's idle list
	// while it holds no message.
	idlePrev, idleNext *channelLog
	idle               bool
}

// The memory a held message and a known channel cost beyond their bytes,
// charged against MaxBytes: the entry, its slot in the channel's ring,
// and the share of the channel map and its struct.
var (
	EntryOverhead   = int64(unsafe.Sizeof(entry{})) + int64(unsafe.Sizeof((*entry)(nil)))
	ChannelOverhead = int64(unsafe.Sizeof(channelLog{})) + 64 // map entry and bucket share
)

// ErrEncode: an Append's encode callback returned a data start outside
// its frame.
var ErrEncode = errors.New("history: encode returned data outside its frame")

// NewMemory returns an empty store with a new random epoch.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.Size < 1 || cfg.TTL <= 0 || cfg.MaxBytes <= 0 {
		return nil, fmt.Errorf("history: bad config (size %d, ttl %v, max bytes %d)", cfg.Size, cfg.TTL, cfg.MaxBytes)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("history: epoch: %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Memory{
		size:     cfg.Size,
		ttl:      int64(cfg.TTL),
		maxBytes: cfg.MaxBytes,
		now:      cfg.Now,
		epoch:    hex.EncodeToString(b[:]),
		channels: make(map[string]*channelLog),
	}, nil
}

// Epoch is the store's epoch, fixed for its life.
func (m *Memory) Epoch() string { return m.epoch }

// Append assigns the next offset to a message of channel and keeps it.
// encode builds the message's frame for that offset and says where its
// data starts in the frame (the data runs to the frame's last byte but
// one, the closing brace of the message object). encode runs under the
// store's lock, so offsets reach the store, and the frames that carry
// them, in increasing order. The frame is kept, shared: nobody may
// modify it afterwards.
func (m *Memory) Append(channel string, encode func(offset uint64) (frame []byte, dataStart int)) (Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	offset := m.seq + 1
	frame, dataStart := encode(offset)
	if dataStart < 0 || dataStart >= len(frame) {
		return Position{}, ErrEncode
	}
	m.seq = offset
	now := m.now().UnixNano()
	m.expireLocked(now)

	log := m.channels[channel]
	if log == nil {
		log = &channelLog{name: channel, trimmed: m.forgotten}
		m.channels[channel] = log
		m.bytes += ChannelOverhead + int64(len(channel))
	} else if log.idle {
		m.unlinkIdle(log)
	}
	e := &entry{offset: offset, frame: frame, dataStart: int32(dataStart), at: now, log: log}
	log.last = offset
	log.msgs = append(log.msgs, e)
	m.linkNewest(e)
	m.count++
	m.bytes += EntryOverhead + int64(cap(frame))

	if len(log.msgs)-log.head > m.size {
		m.drop(log.msgs[log.head], now)
	}
	for m.bytes > m.maxBytes && m.evictOldest(now) {
	}
	return Position{Epoch: m.epoch, Offset: offset}, nil
}

// Expire drops messages past the TTL. Reads and appends expire what they
// touch anyway; the gateway's clock calls this so that a quiet node gives
// the memory back too. It costs one comparison when nothing is due.
func (m *Memory) Expire() {
	m.mu.Lock()
	m.expireLocked(m.now().UnixNano())
	m.mu.Unlock()
}

// Stats reports what the store holds: messages and the bytes charged for
// them and for known channels.
func (m *Memory) Stats() (messages int, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count, m.bytes
}

// Latest implements Source.
func (m *Memory) Latest(channel string, done Done) {
	m.mu.Lock()
	m.expireLocked(m.now().UnixNano())
	p := Page{Epoch: m.epoch}
	if log := m.channels[channel]; log != nil {
		p.Latest = log.last
	}
	m.mu.Unlock()
	done(p, nil)
}

// Since implements Source.
func (m *Memory) Since(channel string, from Position, limit int, done Done) {
	done(m.since(channel, from, limit), nil)
}

func (m *Memory) since(channel string, from Position, limit int) Page {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(m.now().UnixNano())
	p := Page{Epoch: m.epoch}
	log := m.channels[channel]
	if log != nil {
		p.Latest = log.last
	}
	if from.Epoch != "" && from.Epoch != m.epoch || from.Offset > m.seq {
		return p // another life's offset, or one never handed out
	}
	if log == nil {
		// Unknown here: never published, or forgotten whole. Nothing can
		// have followed from unless a forgotten channel was beyond it.
		if from.Offset >= m.forgotten {
			p.Latest, p.Complete = from.Offset, true
		}
		return p
	}
	held := log.msgs[log.head:]
	i := sort.Search(len(held), func(i int) bool { return held[i].offset > from.Offset })
	after := held[i:]
	n := min(len(after), max(limit, 0))
	p.Messages = messages(after[:n])
	p.Complete = from.Offset >= log.trimmed && len(after) <= limit
	return p
}

// Last implements Source.
func (m *Memory) Last(channel string, n int, done Done) {
	m.mu.Lock()
	m.expireLocked(m.now().UnixNano())
	p := Page{Epoch: m.epoch}
	if log := m.channels[channel]; log != nil {
		p.Latest = log.last
		held := log.msgs[log.head:]
		p.Messages = messages(held[max(len(held)-max(n, 0), 0):])
	}
	m.mu.Unlock()
	done(p, nil)
}

func messages(es []*entry) []Message {
	if len(es) == 0 {
		return nil
	}
	out := make([]Message, len(es))
	for i, e := range es {
		out[i] = Message{Offset: e.offset, Data: e.frame[e.dataStart : len(e.frame)-1 : len(e.frame)-1], Frame: e.frame[:len(e.frame):len(e.frame)]}
	}
	return out
}

// expireLocked drops the messages older than the TTL: they are the head
// of the append-order list. m.mu must be held.
func (m *Memory) expireLocked(now int64) {
	for m.oldest != nil && now-m.oldest.at > m.ttl {
		m.drop(m.oldest, now)
	}
}

// evictOldest drops whichever is older, the oldest message or the
// channel that has held nothing longest, and reports whether there was
// anything to drop. m.mu must be held.
func (m *Memory) evictOldest(now int64) bool {
	switch {
	case m.oldest != nil && (m.idleHead == nil || m.oldest.at <= m.idleHead.idleAt):
		m.drop(m.oldest, now)
	case m.idleHead != nil:
		m.forget(m.idleHead)
	default:
		return false
	}
	return true
}

// drop removes e, which is the head of its channel's ring: the ring and
// the append-order list are both in offset order, and only heads are ever
// dropped. m.mu must be held.
func (m *Memory) drop(e *entry, now int64) {
	log := e.log
	m.unlinkEntry(e)
	m.count--
	m.bytes -= EntryOverhead + int64(cap(e.frame))
	log.msgs[log.head] = nil
	log.head++
	log.trimmed = e.offset
	switch held := len(log.msgs) - log.head; {
	case held == 0:
		log.msgs, log.head = log.msgs[:0], 0
		log.idleAt = now
		m.linkIdle(log)
	case log.head >= held:
		// Slide the held half down so the ring's array stays within twice
		// the channel's size.
		n := copy(log.msgs, log.msgs[log.head:])
		clear(log.msgs[n:])
		log.msgs, log.head = log.msgs[:n], 0
	}
	e.log = nil
}

// forget removes a channel that holds no message. m.mu must be held.
func (m *Memory) forget(log *channelLog) {
	m.unlinkIdle(log)
	delete(m.channels, log.name)
	m.bytes -= ChannelOverhead + int64(len(log.name))
	m.forgotten = max(m.forgotten, log.last)
}

func (m *Memory) linkNewest(e *entry) {
	e.prev = m.newest
	if m.newest != nil {
		m.newest.next = e
	} else {
		m.oldest = e
	}
	m.newest = e
}

func (m *Memory) unlinkEntry(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		m.oldest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		m.newest = e.prev
	}
	e.prev, e.next = nil, nil
}

func (m *Memory) linkIdle(log *channelLog) {
	log.idle = true
	log.idlePrev = m.idleTail
	if m.idleTail != nil {
		m.idleTail.idleNext = log
	} else {
		m.idleHead = log
	}
	m.idleTail = log
}

func (m *Memory) unlinkIdle(log *channelLog) {
	if log.idlePrev != nil {
		log.idlePrev.idleNext = log.idleNext
	} else {
		m.idleHead = log.idleNext
	}
	if log.idleNext != nil {
		log.idleNext.idlePrev = log.idlePrev
	} else {
		m.idleTail = log.idlePrev
	}
	log.idlePrev, log.idleNext, log.idle = nil, nil, false
}
