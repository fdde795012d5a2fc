// Shared by the realtime k6 scripts (bench/realtime.py): graphql-transport-ws sockets on
// k6's event-loop websockets module, so that one VU holds many sockets. k6 v1.1 ships it
// as k6/experimental/websockets (there is no k6/websockets yet).
import { WebSocket } from 'k6/experimental/websockets';

export const MESSAGE_EVENTS =
  'subscription { messageEvents { kind threadId seq message { id seq text } } }';
export const NOTIFICATION_EVENTS = 'subscription { notificationEvents { kind unreadCount } }';

export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'];

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
