"""deflate_client.py: Python's `websockets` package (a strict RFC 6455 and
RFC 7692 implementation that shares no code with the gateway) negotiates
permessage-deflate with the gateway and checks that compressed traffic
decodes both ways:

 1. connect to WS_URL offering permessage-deflate (websockets' default offer:
    client_max_window_bits, and it accepts whatever RFC 7692 lets the server
    answer) and subscribe to CHANNEL;
 2. tell the test it has subscribed (a line "subscribed" on stdout); the test
    then publishes BIG (above -compression-min-bytes) and SMALL through the
    admin API, and the script checks both arrive intact;
 3. publish a large message itself (websockets compresses it) and wait for
    the `published` ack and its own copy: the gateway inflated it.

It prints one JSON line, {"ok": true, ...} or {"ok": false, "error": ...}.
test/clients/compression_clients_test.go runs it with the interpreter of
bin/python-venv (test/python/requirements.txt).
"""

import json
import os
import sys

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.sync.client import connect

TIMEOUT = 20


def main():
    url = os.environ["WS_URL"]
    channel = os.environ["CHANNEL"]
    big = json.loads(os.environ["BIG"])
    small = json.loads(os.environ["SMALL"])
    own = {"from": "python", "text": "compressed " * 300}
    result = {"ok": False, "steps": []}
    try:
        with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            result["extensions_header"] = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            deflate = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
            if not deflate:
                raise RuntimeError("permessage-deflate was not negotiated: %r" % result["extensions_header"])
            result["server_no_context_takeover"] = deflate[0].remote_no_context_takeover
            result["client_no_context_takeover"] = deflate[0].local_no_context_takeover
            result["steps"].append("negotiated")

            ws.send(json.dumps({"type": "subscribe", "channel": channel, "id": 1}))
            reply = json.loads(ws.recv(timeout=TIMEOUT))
            if reply.get("type") != "subscribed" or reply.get("id") != 1:
                raise RuntimeError("subscribe reply %r" % reply)
            result["steps"].append("subscribed")
            print("subscribed", flush=True)

            for want in (big, small):
                m = json.loads(ws.recv(timeout=TIMEOUT))
                if m.get("type") != "message" or m.get("channel") != channel or m.get("data") != want:
                    raise RuntimeError("message %r, want data %r" % (str(m)[:200], str(want)[:200]))
            result["steps"].append("received")

            ws.send(json.dumps({"type": "publish", "channel": channel, "data": own, "id": "py"}))
            acked = echoed = False
            while not (acked and echoed):
                m = json.loads(ws.recv(timeout=TIMEOUT))
                if m.get("type") == "published" and m.get("id") == "py":
                    acked = True
                elif m.get("type") == "message" and m.get("data") == own:
                    echoed = True
                else:
                    raise RuntimeError("while waiting for the ack and own message: %r" % str(m)[:200])
            result["steps"].append("published")
        result["close_code"] = ws.close_code
        result["ok"] = True
    except Exception as e:  # the test prints whatever went wrong
        result["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
