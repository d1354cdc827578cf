/**
 * safeCall runs an application callback so that its exception cannot
 * break the client's state machine half-way through a transition: the
 * error is rethrown from a fresh task, where the host reports it (the
 * console in a browser, `uncaughtException` in Node.js) as it would any
 * other callback's.
 */
export function safeCall<A extends unknown[]>(fn: ((...args: A) => void) | undefined, ...args: A): void {
  if (!fn) return;
  try {
    fn(...args);
  } catch (err) {
    setTimeout(() => {
      throw err;
    });
  }
}

/** Emitter: listeners by event name; `on` returns the function that removes it. */
export class Emitter<Events> {
  private listeners: { [K in keyof Events]?: Set<(e: Events[K]) => void> } = {};

  /** on adds a listener of event and returns a function that removes it. */
  on<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): () => void {
    const set = (this.listeners[event] ||= new Set());
    // A wrapper, so that adding the same function twice gives two
    // listeners, each removed by its own off().
    const listener = (e: Events[K]) => fn(e);
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  protected emit<K extends keyof Events>(event: K, e: Events[K]): void {
    this.listeners[event]?.forEach((fn) => safeCall(fn, e));
  }
}
