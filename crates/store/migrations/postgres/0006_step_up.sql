-- 0006: step-up (PRODUCT §8). A session records how it was made; `verified_at` is now the
-- last user-verified passkey ceremony in *this browser* (0 for a session made by QR
-- approval, which ran none). A QR approval may grant the redeeming desktop one passkey
-- addition without a step-up, when the operator allows it and the approver chose it. A
-- session also ends after a time without use (`session_idle`): `last_seen_at` is when it
-- was last used, written at most once a minute.

ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'passkey';
ALTER TABLE sessions ADD COLUMN may_add_passkey_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;
ALTER TABLE qr_attempts ADD COLUMN allow_passkey BIGINT NOT NULL DEFAULT 0;
