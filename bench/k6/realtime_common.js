// Shared by the realtime k6 scripts (bench/realtime.py): graphql-transport-ws sockets on
// k6's event-loop websockets module, so that one VU holds many sockets. k6 v1.1 ships it
// as k6/experimental/websockets (there is no k6/websockets yet).
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { WebSocket } from 'k6/experimental/websockets';

export const MESSAGE_EVENTS =
  'subscription { messageEvents { kind threadId seq message { id seq text } } }';
export const NOTIFICATION_EVENTS = 'subscription { notificationEvents { kind unreadCount } }';

export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'];
const SEND =
  'mutation($t: ID!, $text: String!) { sendMessage(input: {threadId: $t, text: $text}) ' +
  '{ message { seq } } }';
let reported = 0; // per VU

// A VU's first five failures on the console (FAILED ...): bench/realtime.py quotes them.
export function printFailure(message) {
  if (reported < 5) {
    reported += 1;
    console.error(`FAILED ${message}`);
  }
}

// DATA's one-to-one threads, index-aligned: {"threads": [ids], "senders": [tokens],
// "receivers": [tokens]} as [{thread, sender, receiver}] (init context only).
export function threadPairs() {
  return new SharedArray('pairs', () => {
    const parsed = JSON.parse(open(__ENV.DATA));
    return parsed.threads.map((thread, index) => ({
      thread,
      sender: parsed.senders[index],
      receiver: parsed.receivers[index],
    }));
  });
}

// `text` into the pair's thread, sent as its sender through SENDER (sendMessage): the
// response and why it failed ('' if it did not: a status other than 200, errors, no seq).
export function sendInto(pair, text) {
  const body = JSON.stringify({ query: SEND, variables: { t: pair.thread, text } });
  const response = http.post(`${__ENV.SENDER}/graphql`, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${pair.sender}` },
    timeout: __ENV.TIMEOUT || '5s',
  });
  const answer = typeof response.body === 'string' ? response.body : '';
  const bad = response.status !== 200 || !answer.includes('"seq"') || answer.includes('"errors"');
  const failure = bad
    ? `send status=${response.status} error=${response.error} body=${answer.slice(0, 300)}`
    : '';
  return { response, failure };
}

// Receivers that hold their sockets (function `receive`, one iteration on each of
// `receivers` VUs, at most `receiveSeconds`) while senders (function `send`) run at `rate`
// per second for `sendSeconds` from `warm` seconds in, on PRE_VUS / MAX_VUS VUs (by
// default `preVUs` / `maxVUs`).
export function receiveWhileSending({
  receivers,
  receiveSeconds,
  warm,
  rate,
  sendSeconds,
  preVUs,
  maxVUs,
}) {
  return {
    summaryTrendStats: TREND_STATS,
    scenarios: {
      receivers: {
        executor: 'per-vu-iterations',
        exec: 'receive',
        vus: receivers,
        iterations: 1,
        maxDuration: `${receiveSeconds}s`,
      },
      senders: {
        executor: 'constant-arrival-rate',
        exec: 'send',
        startTime: `${warm}s`,
        rate,
        timeUnit: '1s',
        duration: `${sendSeconds}s`,
        preAllocatedVUs: parseInt(__ENV.PRE_VUS || `${preVUs}`, 10),
        maxVUs: parseInt(__ENV.MAX_VUS || `${maxVUs}`, 10),
        gracefulStop: '5s',
      },
    },
  };
}

export function wsUrl(target) {
  return `${target.replace(/^http/, 'ws')}/graphql`;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

// `promise`, or undefined after `ms`, whichever comes first; the timer is cleared, so a
// settled wait leaves nothing pending in the VU's event loop.
export function within(promise, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms));
  });
  return Promise.race([promise, timeout]).then((value) => {
    clearTimeout(timer);
    return value;
  });
}

// One socket: connection_init with the bearer token, then, once acknowledged, a
// subscribe for each of `queries` (ids "1", "2", ...). `on` holds optional callbacks:
//   ack(live)               connection_ack arrived (live.ackMs: open to ack)
//   event(live, id, data)   a `next` payload's data
//   failure(live, message)  a refusal, a GraphQL error on a subscription, a socket error
//   close(live)             the socket closed (live.closedByUs tells whether we asked)
// live.settled resolves once the socket is acknowledged or closed.
export function openLive(url, token, queries, on) {
  let settle;
  const settled = new Promise((resolve) => {
    settle = resolve;
  });
  const live = {
    settled,
    ws: new WebSocket(url, 'graphql-transport-ws'),
    createdAt: Date.now(),
    acked: false,
    ackMs: 0,
    closed: false,
    closedByUs: false,
  };
  const ws = live.ws;
  ws.onopen = () => {
    live.openedAt = Date.now();
    ws.send(
      JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } }),
    );
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'connection_ack') {
      live.acked = true;
      live.ackMs = Date.now() - live.createdAt;
      queries.forEach((query, index) => {
        ws.send(JSON.stringify({ id: String(index + 1), type: 'subscribe', payload: { query } }));
      });
      if (on.ack) on.ack(live);
      settle();
    } else if (message.type === 'next') {
      const payload = message.payload || {};
      if (payload.errors && on.failure) on.failure(live, JSON.stringify(payload.errors));
      if (payload.data && on.event) on.event(live, message.id, payload.data);
    } else if (message.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong' }));
    } else if (message.type === 'error' || message.type === 'complete') {
      if (on.failure) on.failure(live, `${message.type} ${JSON.stringify(message.payload || {})}`);
    }
  };
  ws.onerror = (event) => {
    // An error while we close (for example "close sent") is not the server's doing.
    if (on.failure && !live.closedByUs) on.failure(live, `socket error ${event && event.error}`);
  };
  ws.onclose = () => {
    live.closed = true;
    if (on.close) on.close(live);
    settle();
  };
  return live;
}

export function closeLive(live) {
  if (!live.closed) {
    live.closedByUs = true;
    live.ws.close();
  }
}

// Until every socket has closed, or `limitMs` passed.
export async function allClosed(lives, limitMs) {
  const deadline = Date.now() + limitMs;
  while (lives.some((live) => !live.closed) && Date.now() < deadline) {
    await sleep(50);
  }
}
