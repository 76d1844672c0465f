/** Lets timers, I/O callbacks and other tenants' requests run before long work goes on. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
