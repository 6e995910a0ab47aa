// The worker's shutdown request (SIGTERM), as something running jobs can subscribe to.
export class Shutdown {
  private readonly listeners = new Set<() => void>();
  private requestedAt: number | null = null;

  get requested(): boolean {
    return this.requestedAt !== null;
  }

  request(): void {
    if (this.requestedAt !== null) return;
    this.requestedAt = Date.now();
    for (const listener of [...this.listeners]) listener();
  }

  /** Calls `listener` when shutdown is requested (at once if it already was). Returns an unsubscribe. */
  subscribe(listener: () => void): () => void {
    if (this.requestedAt !== null) {
      queueMicrotask(listener);
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
