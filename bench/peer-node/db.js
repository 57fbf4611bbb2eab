// Storage for the peer: the same tables and the same statements per request as Handoff's
// store (crates/core/src/storage.rs): ceremonies are single-use (DELETE ... RETURNING),
// a sign-in records its use with a compare-and-set on the counter, and sessions are stored
// by the SHA-256 of their token. One implementation per database kind, one interface.

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS users (
     id TEXT PRIMARY KEY,
     identifier TEXT NOT NULL UNIQUE,
     display_name TEXT NOT NULL,
     created_at BIGINT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS credentials (
     id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     public_key BYTEA_OR_BLOB NOT NULL,
     counter BIGINT NOT NULL,
     transports TEXT NOT NULL,
     aaguid TEXT NOT NULL,
     backup_eligible BOOLEAN NOT NULL,
     backup_state BOOLEAN NOT NULL,
     created_at BIGINT NOT NULL,
     last_used_at BIGINT)`,
  `CREATE INDEX IF NOT EXISTS credentials_user ON credentials(user_id)`,
  `CREATE TABLE IF NOT EXISTS ceremonies (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     payload TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS sessions (
     token_digest TEXT PRIMARY KEY,
     user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     created_at BIGINT NOT NULL,
     expires_at BIGINT NOT NULL,
     verified_at BIGINT NOT NULL,
     user_agent TEXT,
     ip TEXT)`,
];

const CRED_COLUMNS =
  'c.id, c.user_id, c.public_key, c.counter, c.transports, u.identifier, u.display_name';

function credRow(r) {
  if (!r) return null;
  return {
    id: r.id,
    userId: r.user_id,
    publicKey: new Uint8Array(r.public_key),
    counter: Number(r.counter),
    transports: JSON.parse(r.transports),
    identifier: r.identifier,
    displayName: r.display_name,
  };
}

// ---------------------------------------------------------------- SQLite (better-sqlite3)
export async function openSqlite(path) {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${process.env.PEER_SQLITE_SYNCHRONOUS || 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  for (const s of SCHEMA) db.exec(s.replace('BYTEA_OR_BLOB', 'BLOB'));

  const q = {
    userByIdentifier: db.prepare('SELECT id, identifier, display_name FROM users WHERE identifier = ?'),
    credsOfUser: db.prepare('SELECT id, transports FROM credentials WHERE user_id = ? ORDER BY created_at'),
    putCeremony: db.prepare('INSERT INTO ceremonies (id, kind, payload, created_at, expires_at) VALUES (?, ?, ?, ?, ?)'),
    takeCeremony: db.prepare('DELETE FROM ceremonies WHERE id = ? AND kind = ? RETURNING payload, expires_at'),
    findCred: db.prepare(`SELECT ${CRED_COLUMNS} FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.id = ?`),
    recordUse: db.prepare(
      'UPDATE credentials SET counter = ?, last_used_at = ?, backup_state = ? WHERE id = ? AND (counter < ? OR (counter = 0 AND ? = 0))',
    ),
    insertUser: db.prepare('INSERT INTO users (id, identifier, display_name, created_at) VALUES (?, ?, ?, ?)'),
    insertCred: db.prepare(
      'INSERT INTO credentials (id, user_id, public_key, counter, transports, aaguid, backup_eligible, backup_state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    insertSession: db.prepare(
      'INSERT INTO sessions (token_digest, user_id, created_at, expires_at, verified_at, user_agent, ip) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
  };
  const createWithPasskey = db.transaction((u, c) => {
    q.insertUser.run(u.id, u.identifier, u.displayName, u.createdAt);
    q.insertCred.run(c.id, c.userId, Buffer.from(c.publicKey), c.counter, JSON.stringify(c.transports), c.aaguid, c.be ? 1 : 0, c.bs ? 1 : 0, c.createdAt);
  });

  return {
    kind: 'sqlite',
    async findUser(identifier) {
      const r = q.userByIdentifier.get(identifier);
      return r ? { id: r.id, identifier: r.identifier, displayName: r.display_name } : null;
    },
    async credentialsOf(userId) {
      return q.credsOfUser.all(userId).map((r) => ({ id: r.id, transports: JSON.parse(r.transports) }));
    },
    async putCeremony(id, kind, payload, createdAt, expiresAt) {
      q.putCeremony.run(id, kind, payload, createdAt, expiresAt);
    },
    async takeCeremony(id, kind) {
      const r = q.takeCeremony.get(id, kind);
      return r ? { payload: r.payload, expiresAt: Number(r.expires_at) } : null;
    },
    async findCredential(id) {
      return credRow(q.findCred.get(id));
    },
    async recordUse(id, counter, at, backupState) {
      return q.recordUse.run(counter, at, backupState ? 1 : 0, id, counter, counter).changes === 1;
    },
    async createWithPasskey(user, cred) {
      createWithPasskey(user, cred);
    },
    async createSession(s) {
      q.insertSession.run(s.tokenDigest, s.userId, s.createdAt, s.expiresAt, s.verifiedAt, s.userAgent, s.ip);
    },
    async close() {
      db.close();
    },
  };
}

// ---------------------------------------------------------------- PostgreSQL (pg)
export async function openPostgres(url) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: Number(process.env.PEER_PG_POOL || 16) });
  for (const s of SCHEMA) await pool.query(s.replace('BYTEA_OR_BLOB', 'BYTEA'));
  // Named statements are prepared once per connection, as sqlx does.
  const run = (name, text, values) => pool.query({ name, text, values });

  return {
    kind: 'postgres',
    async findUser(identifier) {
      const { rows } = await run('user_by_identifier', 'SELECT id, identifier, display_name FROM users WHERE identifier = $1', [identifier]);
      const r = rows[0];
      return r ? { id: r.id, identifier: r.identifier, displayName: r.display_name } : null;
    },
    async credentialsOf(userId) {
      const { rows } = await run('creds_of_user', 'SELECT id, transports FROM credentials WHERE user_id = $1 ORDER BY created_at', [userId]);
      return rows.map((r) => ({ id: r.id, transports: JSON.parse(r.transports) }));
    },
    async putCeremony(id, kind, payload, createdAt, expiresAt) {
      await run('put_ceremony', 'INSERT INTO ceremonies (id, kind, payload, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [id, kind, payload, createdAt, expiresAt]);
    },
    async takeCeremony(id, kind) {
      const { rows } = await run('take_ceremony', 'DELETE FROM ceremonies WHERE id = $1 AND kind = $2 RETURNING payload, expires_at', [id, kind]);
      const r = rows[0];
      return r ? { payload: r.payload, expiresAt: Number(r.expires_at) } : null;
    },
    async findCredential(id) {
      const { rows } = await run('find_cred', `SELECT ${CRED_COLUMNS} FROM credentials c JOIN users u ON u.id = c.user_id WHERE c.id = $1`, [id]);
      return credRow(rows[0]);
    },
    async recordUse(id, counter, at, backupState) {
      const r = await run(
        'record_use',
        'UPDATE credentials SET counter = $1, last_used_at = $2, backup_state = $3 WHERE id = $4 AND (counter < $1 OR (counter = 0 AND $1 = 0))',
        [counter, at, backupState, id],
      );
      return r.rowCount === 1;
    },
    async createWithPasskey(u, c) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('INSERT INTO users (id, identifier, display_name, created_at) VALUES ($1, $2, $3, $4)', [u.id, u.identifier, u.displayName, u.createdAt]);
        await client.query(
          'INSERT INTO credentials (id, user_id, public_key, counter, transports, aaguid, backup_eligible, backup_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
          [c.id, c.userId, Buffer.from(c.publicKey), c.counter, JSON.stringify(c.transports), c.aaguid, c.be, c.bs, c.createdAt],
        );
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK');
        throw e;
      } finally {
        client.release();
      }
    },
    async createSession(s) {
      await run(
        'insert_session',
        'INSERT INTO sessions (token_digest, user_id, created_at, expires_at, verified_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [s.tokenDigest, s.userId, s.createdAt, s.expiresAt, s.verifiedAt, s.userAgent, s.ip],
      );
    },
    async close() {
      await pool.end();
    },
  };
}
