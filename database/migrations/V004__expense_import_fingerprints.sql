-- Duplicate detection for bank statement imports (`import`): each imported expense keeps the
-- sha256 fingerprint of its source row (user, date, amount, normalized note, occurrence number
-- in the file); the unique constraint lets a re-import insert with `on conflict do nothing`.

alter table expenses
    add column import_fingerprint text;

alter table expenses
    add constraint expenses_import_fingerprint_key unique (import_fingerprint);
