"""Every Redis key voicebridge uses. Nothing else in the code builds a key name.

All keys start with the configured prefix, so several deployments (or test runs) can share one
Redis. Values are JSON documents unless noted.

| key | type | holds |
|---|---|---|
| {p}:agent:{id} | string | agent record |
| {p}:agents | zset | agent ids by created_at ms |
| {p}:phone | hash | phone number -> agent id (numbers are unique across agents) |
| {p}:conv:{id} | string | conversation record |
| {p}:conv:{id}:msgs | list | messages in order |
| {p}:convs | zset | conversation ids by started_at ms |
| {p}:convs:agent:{id} / :user:{id} / :status:{s} | zset | the same, per filter |
| {p}:cvt:{sha256(token)} | string + TTL | conversation id a WebSocket token opens |
| {p}:webhook:{id} | string | webhook record (with its secret) |
| {p}:webhooks | zset | webhook ids by created_at ms |
| {p}:events | stream | every domain event: fields type, id, body (the exact bytes signed) |
| {p}:dlv:{id} | hash | a pending delivery job (event body, webhook, attempt count, lease) |
| {p}:dlv:due | zset | delivery ids by the ms they are next due (leased jobs are pushed ahead) |
| {p}:webhook:{id}:dlv | set | ids of the webhook's pending delivery jobs, to cancel them |
| {p}:webhook:{id}:log | stream | delivery attempt records (field record), capped |
| {p}:deadletter | stream | deliveries that used up their retries |
| {p}:apikey:{prefix} | string | api key record with sha256 of the key |
| {p}:apikeys | zset | api key prefixes by created_at ms |
| {p}:node:{node}:cmd | stream | commands for the sessions a bridge process holds (end), capped |
| {p}:node:{node}:alive | string + TTL | present while that process runs (its command listener) |
| {p}:node:{node}:info | string + TTL | its NodeRecord (addresses, calls, state), kept fresh |
| {p}:nodes | set | names of the nodes that recorded themselves (pruned when their info lapses) |
"""

from __future__ import annotations

from dataclasses import dataclass

EVENTS_GROUP = "webhooks"


@dataclass(frozen=True)
class Keys:
    prefix: str

    def agent(self, agent_id: str) -> str:
        return f"{self.prefix}:agent:{agent_id}"

    @property
    def agents(self) -> str:
        return f"{self.prefix}:agents"

    @property
    def phone_numbers(self) -> str:
        return f"{self.prefix}:phone"

    @property
    def agents_changed(self) -> str:
        """The pub/sub channel every change to an agent or its numbers is announced on."""
        return f"{self.prefix}:agents:changed"

    def conversation(self, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{conversation_id}"

    def messages(self, conversation_id: str) -> str:
        return f"{self.prefix}:conv:{conversation_id}:msgs"

    @property
    def conversations(self) -> str:
        return f"{self.prefix}:convs"

    def conversations_by(self, field: str, value: str) -> str:
        return f"{self.prefix}:convs:{field}:{value}"

    def conversation_token(self, token_digest: str) -> str:
        return f"{self.prefix}:cvt:{token_digest}"

    def webhook(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}"

    @property
    def webhooks(self) -> str:
        return f"{self.prefix}:webhooks"

    def webhook_log(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}:log"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}:dlv:{delivery_id}"

    @property
    def delivery_prefix(self) -> str:
        """What `delivery` puts before the id, for Lua scripts that find jobs by id."""
        return self.delivery("")

    def webhook_deliveries(self, webhook_id: str) -> str:
        return f"{self.prefix}:webhook:{webhook_id}:dlv"

    @property
    def deliveries_due(self) -> str:
        return f"{self.prefix}:dlv:due"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}:deadletter"

    def api_key(self, key_prefix: str) -> str:
        return f"{self.prefix}:apikey:{key_prefix}"

    @property
    def api_keys(self) -> str:
        return f"{self.prefix}:apikeys"

    def node_commands(self, node: str) -> str:
        return f"{self.prefix}:node:{node}:cmd"

    def node_alive(self, node: str) -> str:
        return f"{self.prefix}:node:{node}:alive"

    def node_info(self, node: str) -> str:
        return f"{self.prefix}:node:{node}:info"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"
