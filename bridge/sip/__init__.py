"""The SIP user agent: our own asyncio stack (DESIGN.md §3).

The message layer is pure logic, no sockets, no asyncio; each module has one job and imports
only those listed before it:

- `grammar`: RFC 3261 lexical rules (tokens, quoted strings, parameters) and `SipParseError`,
  the only exception that parsing untrusted input raises.
- `uri`: sip/sips URIs (escapes kept as written, §19.1.4 comparison), tel: and opaque URIs,
  `NameAddr` addresses.
- `headers`: `Headers`, the ordered case-insensitive multi-map (compact forms, list splitting).
- `fields`: typed header values (Via, CSeq, media types, option tags, Session-Expires, Event).
- `message`: `Request`/`Response`, `parse(data, datagram=…)`, typed accessors, `to_bytes()`.
- `body`: the body of a media type, also from a multipart/mixed body.
- `validate`: `check()`, the verdict a UAS gives before dialog logic (answer, reject, drop),
  and `response_to()`, the §8.2.6 response builder.
- `framing`: `StreamFramer`, TCP reassembly by Content-Length with RFC 5626 keep-alives.

On top of it:
- `timers`: RFC 3261 timer values and the clocks (asyncio, and a manual one for tests).
- `transaction`: the four §17 transaction machines (RFC 6026 for 2xx to INVITE) and the table
  that routes messages to them or to the transaction user.
- `transport`: UDP and TCP on one port, RFC 3581 rport/received, §18.2.2 response routing.
- `dialog`: RFC 3261 §12 dialog state and in-dialog request building.
- `call_interfaces`: what a call and the application exchange (`CallHandler`, `CallListener`,
  `MediaEndpoint`, end reasons, transfer results); `call_rules`: the pure per-message rules
  (session-timer negotiation, INFO DTMF, sipfrag, caller identity).
- `call`: one call's signaling state machine (answer, CANCEL, BYE, re-INVITE/UPDATE, session
  timers, INFO DTMF, REFER with NOTIFY sipfrag).
- `useragent`: `UserAgent`, the transaction user: routing, call limit, draining.

Beside it: SDP and offer/answer (`sdp`, `offer_answer`) and RTP media (`rtp`, `rtp_*`, `jitter`,
`dtmf`, `rtcp`, `ports`).
"""
