/**
 * Postgres URLs mean what libpq says they mean. node-postgres reads `sslmode=require` as
 * verify-full unless told to follow libpq; libpq's `require` encrypts without verifying the
 * server (`verify-ca` / `verify-full` verify, with `sslrootcert`). Supabase documents its URLs
 * in libpq terms, so every URL given to `pg` goes through here.
 */
export function pgConnectionString(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url; // not a URL (a key=value string): pg reads it as is
  }
  const params = parsed.searchParams;
  if (params.has('sslmode') && !params.has('uselibpqcompat')) params.set('uselibpqcompat', 'true');
  return parsed.toString();
}
