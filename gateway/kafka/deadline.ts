/** Bounds a Kafka call that has no deadline of its own (a delivery, an owner lookup, a describe), so a request handler answers in time. */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from Kafka within ${ms} ms`)), ms);
  });
  try {
    // race() handles a late rejection of `work`, so it never becomes an unhandled one.
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
