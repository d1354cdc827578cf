package jshistory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// wantConfig is the stream the flags describe, with epoch in its metadata.
//
//   - One subject per channel, MaxMsgsPerSubject = Size, MaxAge = TTL, and
//     MaxBytes with DiscardOld: every limit removes a channel's oldest
//     messages first, so what the stream holds of a channel is always a
//     suffix of what was published to it. Since and Follow rely on that.
//   - AllowDirect: reads (Since, Last, a follower catching up) are direct
//     gets, answered by any replica without a consumer.
//   - RePublish: every stored message is republished on <prefix>.live.*
//     with its sequence and the sequence of the channel's previous
//     message (Nats-Last-Sequence): followers get live messages over plain
//     core subscriptions and see a gap as a predecessor they did not get.
//   - Duplicates: the Nats-Msg-Id window (at most TTL, the server's rule).
func (h *History) wantConfig(epoch string) jetstream.StreamConfig {
	dup := min(2*time.Minute, h.cfg.TTL)
	return jetstream.StreamConfig{
		Name:              h.cfg.Stream,
		Description:       "shardgate channel history",
		Subjects:          []string{h.subj.streamFilter()},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: h.cfg.Size,
		MaxMsgs:           -1,
		MaxAge:            h.cfg.TTL,
		MaxBytes:          h.cfg.MaxBytes,
		Replicas:          h.cfg.Replicas,
		Duplicates:        dup,
		AllowDirect:       true,
		RePublish: &jetstream.RePublish{
			Source:      h.subj.streamFilter(),
			Destination: h.subj.republishTo(),
		},
		Metadata: map[string]string{epochKey: epoch},
	}
}

// newEpoch is a fresh epoch: unique, short, the same on every node once
// stored in the stream.
func newEpoch() string { return nuid.Next() }

// checkStream makes sure the stream exists and matches the flags, and
// takes its epoch. At start a failure fails Open; later (after a
// reconnect) it is returned to the caller that needed the check.
//
//   - No stream: it is created with a new epoch. Nodes racing to create
//     it differ only in the epoch, so all but one get "already in use" and
//     read the winner's.
//   - A stream whose storage type or retention differs cannot be changed
//     by NATS: ErrStreamConfig, naming the field; delete the stream (the
//     history with it) or fix the flags.
//   - Any other difference (subjects, limits, replicas, direct get,
//     republish, duplicates window) is updated in place, keeping the
//     epoch: the messages held stay valid. A server refusing the update
//     (say, more replicas than servers) gives ErrStreamConfig with the
//     server's reason.
//   - A stream without an epoch (made by hand) gets one derived from its
//     creation time, the same on every node without writing anything.
//
// A changed epoch (the stream was recreated while this node ran) ends
// every follower with ErrEpochChanged.
func (h *History) checkStream(ctx context.Context, start bool) error {
	changed, err := h.checkStreamLocked(ctx, start)
	if changed {
		// After the lock: lost may call back (Latest, Follow).
		h.loseAll(ErrEpochChanged)
	}
	return err
}

// checkStreamLocked is checkStream under epochMu; changed reports a new
// epoch while running.
func (h *History) checkStreamLocked(ctx context.Context, start bool) (changed bool, err error) {
	h.epochMu.Lock()
	defer h.epochMu.Unlock()
	gen := h.gen.Load()
	info, err := h.ensureStream(ctx)
	if err != nil {
		return false, err
	}
	epoch := info.Config.Metadata[epochKey]
	if epoch == "" {
		epoch = "c" + strconv.FormatInt(info.Created.UnixNano(), 36)
	}
	old := h.epoch.Load()
	h.epoch.Store(&epoch)
	h.checkedGen = gen
	if !start && old != nil && *old != epoch {
		h.log.Warn("jshistory: history stream was recreated; followers lose their place",
			"stream", h.cfg.Stream, "old_epoch", *old, "epoch", epoch)
		return true, nil
	}
	return false, nil
}

// ensureCurrent checks the stream once per connection, before the first
// answer that carries an epoch: a stream lost with a NATS restart is then
// recreated, and its new epoch used, before any offset of it is given out.
func (h *History) ensureCurrent(ctx context.Context) error {
	h.epochMu.Lock()
	current := h.checkedGen == h.gen.Load()
	h.epochMu.Unlock()
	if current {
		return nil
	}
	return h.checkStream(ctx, false)
}

// staleEpoch makes the next ensureCurrent check the stream again (after
// an answer saying the stream is gone).
func (h *History) staleEpoch() {
	h.epochMu.Lock()
	h.checkedGen = 0
	h.epochMu.Unlock()
}

func (h *History) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := h.js.Stream(ctx, h.cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = h.createStream(ctx)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = h.js.Stream(ctx, h.cfg.Stream) // another node won the race
		}
		if err == nil {
			h.log.Info("jshistory: history stream ready", "stream", h.cfg.Stream)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jshistory: stream %s: %w", h.cfg.Stream, h.unavailable("open stream", err))
	}
	info := s.CachedInfo()
	have := info.Config
	if have.Storage != jetstream.FileStorage {
		return nil, fmt.Errorf("%w: stream %s has %s storage, history needs file storage; delete the stream (its history is lost) or use another -broker prefix",
			ErrStreamConfig, h.cfg.Stream, have.Storage)
	}
	if have.Retention != jetstream.LimitsPolicy {
		return nil, fmt.Errorf("%w: stream %s has %s retention, history needs limits; delete the stream",
			ErrStreamConfig, h.cfg.Stream, have.Retention)
	}
	epoch := have.Metadata[epochKey]
	want := h.wantConfig(epoch)
	if epoch == "" {
		want.Metadata = have.Metadata // derived epoch: write nothing new
	} else {
		md := maps.Clone(have.Metadata)
		md[epochKey] = epoch
		want.Metadata = md
	}
	diff := configDiff(have, want)
	if len(diff) == 0 {
		return info, nil
	}
	h.log.Warn("jshistory: history stream differs from the flags; updating", "stream", h.cfg.Stream, "fields", diff)
	s, err = h.js.UpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("%w: updating stream %s (%v): %w", ErrStreamConfig, h.cfg.Stream, diff, err)
	}
	return s.CachedInfo(), nil
}

// configDiff names the fields of have that differ from want (the fields
// wantConfig sets; the server fills others with defaults).
func configDiff(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, differ bool) {
		if differ {
			d = append(d, name)
		}
	}
	add("subjects", !slices.Equal(have.Subjects, want.Subjects))
	add("discard", have.Discard != want.Discard)
	add("max_msgs_per_subject", have.MaxMsgsPerSubject != want.MaxMsgsPerSubject)
	add("max_msgs", have.MaxMsgs != want.MaxMsgs)
	add("max_age", have.MaxAge != want.MaxAge)
	add("max_bytes", have.MaxBytes != want.MaxBytes)
	add("replicas", have.Replicas != want.Replicas)
	add("duplicate_window", have.Duplicates != want.Duplicates)
	add("allow_direct", have.AllowDirect != want.AllowDirect)
	add("republish", have.RePublish == nil || *have.RePublish != *want.RePublish)
	add("metadata", have.Metadata[epochKey] != want.Metadata[epochKey])
	return d
}

// createStream creates the stream with a new epoch. A server error (500)
// is retried for a while: right after a stream was deleted the server may
// still be removing its store ("error creating store for stream").
func (h *History) createStream(ctx context.Context) (jetstream.Stream, error) {
	cfg := h.wantConfig(newEpoch())
	for try := 0; ; try++ {
		s, err := h.js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || try == 20 || !errors.As(err, &apiErr) || apiErr.Code != 500 {
			return s, err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}
