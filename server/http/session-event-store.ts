/**
 * The event store of one 2025-era Streamable HTTP session: what its GET stream was sent, kept so a
 * client whose stream dropped (a network cut, a proxy's idle timeout, the stream ended because its
 * token expired) hears every notification of the gap when it reconnects. Without it the SDK
 * transport drops a notification sent while no stream is open, and a subscriber silently misses a
 * `notifications/resources/updated`.
 *
 * Events are numbered per session (the SSE `id`), and the newest are kept within
 * `sessionEventsMax` and `sessionEventBytesMax`. A reconnect resumes after its `Last-Event-ID`.
 * One without (an SDK client sends none when its latest stream brought no event) gets every event
 * since the latest stream was asked for: the client saw none of those, or it would have an id.
 * When the events a reconnect needs were dropped past the bounds, nothing can make the gap whole:
 * the session is closed, and its client initializes again and reads afresh (resumeFrom says so).
 *
 * Only the session's own GET stream keeps events: answers are JSON bodies, never a stream.
 */
import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server';

/** Events kept per session: a stream that drops for a while resumes within these. */
export const sessionEventsMax = 1_024;
/** Bytes (as JSON) of the events kept per session: 256 sessions hold at most 64 MiB. */
export const sessionEventBytesMax = 256 * 1024;

interface StoredEvent {
  readonly seq: number;
  readonly streamId: string;
  readonly message: JSONRPCMessage;
  readonly bytes: number;
}

/** Where a GET stream starts: replay after `afterId` (an SDK Last-Event-ID), or the refusal. */
export type Resumption =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'replay'; readonly afterId: string }
  | { readonly kind: 'malformed'; readonly message: string }
  | { readonly kind: 'lost'; readonly message: string };

export class SessionEventStore implements EventStore {
  private readonly events: StoredEvent[] = [];
  /** Index of the oldest kept event in `events` (dropped ones are spliced out in bulk). */
  private head = 0;
  private bytes = 0;
  private lastSeq = 0;
  /** The newest event number dropped past the bounds (0: none). */
  private droppedThroughSeq = 0;
  /** The newest event number when the latest GET stream was asked for. */
  private streamAskedAtSeq = 0;
  /** The GET stream's id in the SDK transport: only its events are kept and replayed. */
  private streamId: string | undefined;

  constructor(
    private readonly eventsMax = sessionEventsMax,
    private readonly eventBytesMax = sessionEventBytesMax,
  ) {}

  async storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    this.lastSeq += 1;
    const seq = this.lastSeq;
    // Only one stream of the session stores events (the SDK's standalone GET stream): a second
    // would mean answers ride streams, which replay here would hand to the wrong stream.
    this.streamId ??= streamId;
    if (streamId !== this.streamId) throw new Error(`session event store: events of stream ${streamId} besides ${this.streamId}`);
    const bytes = JSON.stringify(message).length;
    this.events.push({ seq, streamId, message, bytes });
    this.bytes += bytes;
    while (this.events.length - this.head > this.eventsMax || (this.bytes > this.eventBytesMax && this.events.length - this.head > 1)) {
      const dropped = this.events[this.head]!;
      this.head += 1;
      this.bytes -= dropped.bytes;
      this.droppedThroughSeq = dropped.seq;
    }
    if (this.head > 1_024 && this.head * 2 > this.events.length) {
      this.events.splice(0, this.head);
      this.head = 0;
    }
    return String(seq);
  }

  async replayEventsAfter(lastEventId: string, { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> }): Promise<string> {
    const after = eventNumberOf(lastEventId);
    if (after === undefined || after > this.lastSeq || after < this.droppedThroughSeq) throw new Error(`session event store: no replay after event ${lastEventId}`);
    for (let i = this.head; i < this.events.length; i++) {
      const event = this.events[i]!;
      if (event.seq > after) await send(String(event.seq), event.message);
    }
    return this.streamId ?? standaloneStreamId;
  }

  /**
   * Where a GET stream with this `Last-Event-ID` header (undefined or empty: none) starts; call once per
   * GET, before the SDK serves it. `replay` is handed to the SDK as the header's value.
   */
  resumeFrom(lastEventId: string | undefined): Resumption {
    const asked = this.streamAskedAtSeq;
    this.streamAskedAtSeq = this.lastSeq;
    if (lastEventId === undefined || lastEventId === '') {
      if (asked === this.lastSeq) return { kind: 'fresh' };
      return asked < this.droppedThroughSeq ? this.lost(`the events since this session's previous event stream`) : { kind: 'replay', afterId: String(asked) };
    }
    const after = eventNumberOf(lastEventId);
    if (after === undefined || after > this.lastSeq) {
      this.streamAskedAtSeq = asked;
      return { kind: 'malformed', message: `Last-Event-ID ${JSON.stringify(lastEventId.slice(0, 64))} is not an event of this session (its events are numbered 1 to ${this.lastSeq})` };
    }
    return after < this.droppedThroughSeq ? this.lost(`the events after ${after}`) : { kind: 'replay', afterId: String(after) };
  }

  private lost(what: string): Resumption {
    return {
      kind: 'lost',
      message: `${what} were dropped past the session's bounds (sessionEventsMax = ${this.eventsMax}, sessionEventBytesMax = ${this.eventBytesMax}): the session is closed; start a new one with initialize and read afresh`,
    };
  }
}

/** The SDK transport's id of the GET stream (used only before any event named it). */
const standaloneStreamId = '_GET_stream';

/** Event ids are decimal numbers from 1; anything else names no event. */
function eventNumberOf(id: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(id)) return undefined;
  const n = Number(id);
  return Number.isSafeInteger(n) ? n : undefined;
}
