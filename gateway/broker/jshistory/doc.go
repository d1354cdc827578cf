// Package jshistory keeps channel history for a gateway cluster in NATS
// JetStream: one stream, one subject per channel, offsets that are the
// stream's sequences and an epoch that changes whenever the history was
// lost. It is the cluster half of "History and recovery" (SPEC); the
// gateway reaches it through its history interface.
//
// Use:
//
//	h, err := jshistory.Open(ctx, "nats://127.0.0.1:4222", jshistory.Config{
//		Prefix: "shardgate", Size: 100, TTL: 5 * time.Minute, Replicas: 1,
//	})                                            // creates or checks the stream
//	pos, err := h.Publish(ctx, "news", data)      // {Epoch, Offset}; bounded
//	p, err := h.Latest(ctx, "news")               // first local subscriber:
//	f, err := h.Follow("news", p, deliver, lost)  //   reply subscribed{p} at once
//	f.Position()                                  // later subscribers' offset
//	msgs, whole, err := h.Since(ctx, "news", recoverFrom, recoverMax)
//	msgs, p, err = h.Last(ctx, "news", 100)       // GET /api/history
//	f.Stop()                                      // last local subscriber left
//	h.Close()
//
// # Stream
//
// Open creates the stream (<prefix>.ch.* subjects, MaxMsgsPerSubject =
// Size, MaxAge = TTL, Replicas, MaxBytes with DiscardOld, file storage,
// direct get, republish to <prefix>.live.*) with a new epoch in its
// metadata, or checks an existing one: limits, subjects, replicas, the
// duplicate window, direct get and republish are updated in place (epoch
// and messages kept); storage type and retention cannot be changed by
// NATS, so a stream with other ones fails Open with ErrStreamConfig
// naming the field. A stream made by hand without an epoch gets one
// derived from its creation time. Nodes racing to create the stream
// converge on the winner's epoch. After every reconnect, and when NATS
// says the stream is gone, the stream is checked again before the next
// answer that carries an epoch: a NATS restarted without its store gets
// the stream recreated with a new epoch, and every follower ends with
// ErrEpochChanged.
//
// # Publishing
//
// With history on, the gateway publishes channel messages through
// Publish instead of natsbroker's core publish (messages to everyone and
// disconnect requests stay on natsbroker), and stops subscribing to
// channels in natsbroker: a node gets a followed channel's messages from
// its Follower only, or it would deliver them twice. The offset comes
// from the publish acknowledgement; it goes into the frame, encoded once.
// Publish blocks for a round trip (bounded: see Publish), so call it from
// the API handler's goroutine or a worker, never from a shard. What an
// error guarantees is written on Publish: never stored when the server
// had not read the message (frozen server, broken link); a server that
// read it and stored it too late cannot be prevented by any client.
//
// # Interest → Follow/Stop
//
// A node keeps today's property that it receives only channels it has
// subscribers for: the first local subscriber of a channel starts a
// Follower (Latest, then Follow from it: the reply can carry Latest's
// position at once, since the follower reads the stream from there
// whatever the timing of its subscription), the last one leaving stops
// it. Further subscribers of a followed channel get f.Position(). A
// client recovering gets Since(its position, -recover-max); when whole,
// the gateway sends those messages and then the follower's newer ones,
// dropping offsets at or below the last one sent (the merge the issue
// asks for).
//
// # Followers
//
// Each followed channel is one core subscription to its republish
// subject; the stream's republish carries every message's sequence and
// its channel predecessor, so a follower knows when a message is the next
// one. A gap, a reconnect or NATS dropping messages for a slow node makes
// it read the channel from the stream (direct get) from the last offset
// it delivered, before it takes live messages again. See Follower.
//
// When the stream no longer holds what a follower needs, lost gets
// ErrLost: the gateway closes that channel's subscribers with 4010 (their
// clients reconnect and recover, getting recovered:false from Since when
// history does not cover them) and stops the follower; a new subscriber
// follows again from Latest.
//
// # Completeness
//
// What the stream holds of a channel is always a suffix of what was
// published to it, since every limit removes the oldest first. So a
// position whose message is still held is complete. Otherwise it is
// complete only when provably nothing after it was evicted: fewer than
// Size messages of the channel follow it and the stream's first sequence
// is not past it. That is conservative in two cases, which then get
// recovered:false (or a follower's ErrLost) though nothing was missed:
// a client that missed exactly Size messages, and one whose position is
// older than the oldest message of the whole stream (about TTL) on a
// channel quiet since. Deleting single messages by hand breaks the
// suffix rule; purging or recreating the stream must change the epoch
// (recreating does).
//
// Latest of a channel holding no message is the stream's last sequence,
// not 0 (only an empty stream answers 0): it is where a Follow starts.
// The gateway's Source announces 0 for such a channel instead, as the
// SPEC says (heldLatest); a client recovering from 0 then recovers when
// the channel's messages are provably all held, and gets recovered:false
// otherwise, which is safe.
//
// # Costs (measured, TestCostPerChannel, 2-core VM, one process)
//
// 1,000 followed channels: 1.7 KiB of heap per channel for server and
// client together, no goroutine, one server subscription each; one
// message on each channel published and delivered in about 0.1 s; after
// a cut link comes back, one missed message on each of the 1,000
// channels delivered within 0.5 s (reconnect included: 1,000 catch-ups,
// 16 at a time). 1,000 nats.go ordered consumers instead: 40 KiB per
// channel, 7 goroutines and 4 server subscriptions each, and 1,000
// consumers the server must recreate after every reconnect of the node
// (the same catch-up took 1.6 s). Ordered
// consumers do not scale to a node following many channels; one consumer
// with many filter subjects would need a consumer update (an API call
// and a re-scan of the filter) for every first subscriber and last
// unsubscriber, and its recreation after a gap restarts all channels
// from one sequence, so per-channel loss detection would still be needed
// on top. The republish costs the server one extra message per stored
// message, delivered only to nodes following that channel.
//
// Clustered NATS: direct gets may be served by a replica that lags the
// leader by a few milliseconds; a catch-up that reads too little is
// repaired by the next live message, whose predecessor it lacks.
// Interest registered with one server reaches the others asynchronously,
// and a message republished meanwhile is caught up through the same path.
//
// Locks: History.fmu before Follower.mu; History.epochMu alone. No
// callback runs under a lock of this package.
package jshistory
