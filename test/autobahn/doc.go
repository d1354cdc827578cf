// Package autobahn runs the Autobahn TestSuite's fuzzing client against
// the gateway's own WebSocket layer and reads the suite's verdicts.
//
// The server under test is ./echoserver: the real shard (event loop,
// frame decoder, limits, reassembly, UTF-8 checks, control frames, close
// handshake, outbound queue) with its JSON protocol replaced by echo
// (shard.Options.Echo). The client is kosoku (PyPI), which drives
// Autobahn's own case files from Python 3; the suite's upstream runner
// needs Python 2.
//
// A run, as TestAutobahn and ./runsuite (scripts/autobahn.sh) do it:
//
//	echo, _ := autobahn.BuildEchoServer(ctx, dir)       // go build, no -race
//	srv, _ := autobahn.StartEcho(ctx, echo, autobahn.EchoArgs("9")...) // limits raised for 16 MiB
//	defer srv.Stop()
//	suite, _ := autobahn.LoadSuite(ctx, kosoku)         // the case ids kosoku has
//	g, _ := autobahn.RunGroup(ctx, kosoku, srv.Addr, "9", suite, reportDir)
//	problems := g.Problems()                            // empty: every case passed
//
// Each group of cases is one kosoku run, so its wall time is measured on
// its own. A case passes when its behaviour is OK, NON-STRICT or
// INFORMATIONAL and its closing behaviour OK or INFORMATIONAL; a case the
// suite selects that is absent from the report is a failure too.
package autobahn
