/** The error `p` rejects with; throws when it resolves. For assertions on a rejection's own fields. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}
