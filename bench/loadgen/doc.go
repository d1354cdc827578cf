// Package loadgen runs shardbench's scenarios: a parent process (the
// coordinator) and several worker processes that hold the connections.
//
// Why processes: a process can hold fewer sockets than its open-file limit
// (20,000 on our machines), and a run of 19,000 connections plus the
// server's own must stay under it on both sides. So the coordinator starts
// -procs workers (shardbench re-executes itself as a hidden "worker"
// command), gives each a Plan with its share of the connections and source
// addresses, and talks to it in JSON lines over its stdin and stdout:
//
//	parent → worker   {"cmd":"start","plan":{...}}   open connections, subscribe
//	worker → parent   {"ev":"progress",...}           every ProgressEvery
//	worker → parent   {"ev":"ready",...}              every connection resolved
//	parent → worker   {"cmd":"go"}                    echo: start round trips; soak: start the churn
//	worker → parent   {"ev":"churn_done",...}         soak: churn period over, its connections ended
//	parent → worker   {"cmd":"stop"}                  close everything, report
//	                                                  (soak: with what was published, to count losses)
//	worker → parent   {"ev":"result",...}             histograms and counts
//
// then the parent closes the worker's stdin and the worker exits. A worker
// whose stdin closes early (the parent died) stops at once.
//
// Inside a worker one bench/client Loop drives every connection from one
// goroutine; per connection the worker keeps a 40-byte record. The
// coordinator itself holds no WebSocket connection: it scrapes the
// server's /metrics, publishes through the server's HTTP API (fanout), and
// merges what the workers report into a report.Report.
//
// Latency is measured from a timestamp inside each message's data (see
// AppendData): the wall clock of the sender, read by the receiver on the
// same machine, so it covers the whole path — HTTP publish, the server's
// fan-out, the kernel, and the worker's own read.
package loadgen
