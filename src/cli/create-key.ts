// `npm run key -- <tenant>`: makes an API key for a tenant directly in the database (the operator's
// way in, with no admin key needed), applying migrations first. Prints the key, which is shown
// only this once. `npm run key -- --revoke <key id>` revokes one.
import { loadConfig } from "../config.js";
import { createDb } from "../db/client.js";
import { migrateDatabase } from "../db/migrate.js";
import { createApiKey, revokeApiKey } from "../services/keys.js";

const args = process.argv.slice(2);
const revoke = args[0] === "--revoke";
const name = revoke ? args[1] : args[0];
if (!name || !(revoke ? /^[0-9a-f-]{36}$/i : /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/).test(name)) {
  console.error("usage: npm run key -- <tenant>          make a key for a tenant (letters, digits, . _ -)\n" +
    "       npm run key -- --revoke <key id>  revoke a key");
  process.exit(2);
}

const config = loadConfig();
await migrateDatabase(config.databaseUrl);
const db = createDb(config.databaseUrl);
try {
  if (revoke) {
    const row = await revokeApiKey(db, name);
    console.log(`revoked key ${row.id} (${row.prefix}…) of tenant ${row.tenant}`);
  } else {
    const { row, key } = await createApiKey(db, name);
    console.error(`API key ${row.id} for tenant "${row.tenant}" (shown only now; send it as "Authorization: Bearer <key>"):`);
    console.log(key);
  }
} finally {
  await db.$disconnect();
}
