-- What the report needs, stored by the run itself instead of read back from `runs.spec_json`:
-- each arm's pricing, and each run's cost assumptions and decision. Never edit this file once
-- it has landed.
--
-- Rows written by earlier versions are backfilled from their `spec_json` where it holds the
-- values. What it cannot supply stays NULL ("not recorded"), and the report falls back from
-- that with a note. Hosted arms whose spec gave no price are marked `legacy_per_token`:
-- `Store::open` prices them by the built-in table, as the version that ran them did (SQL has no
-- copy of that table).

-- The spec's `costs:` and `decision:`. All NULL, or none: NULL means not recorded.
ALTER TABLE runs ADD COLUMN daily_requests REAL;
ALTER TABLE runs ADD COLUMN horizon_days REAL;
ALTER TABLE runs ADD COLUMN hourly_rate_usd REAL;
ALTER TABLE runs ADD COLUMN prompt_iteration_hours REAL;
ALTER TABLE runs ADD COLUMN data_prep_hours REAL;
ALTER TABLE runs ADD COLUMN mlops_hours_per_month REAL;
ALTER TABLE runs ADD COLUMN finetune_hourly_usd REAL;
ALTER TABLE runs ADD COLUMN batch_api INTEGER;
ALTER TABLE runs ADD COLUMN decision_metric TEXT;
ALTER TABLE runs ADD COLUMN quality_target REAL;
-- Comma-separated names of the `costs` fields the spec declared; NULL: not known.
ALTER TABLE runs ADD COLUMN declared_costs TEXT;

-- `pricing` is `per_token` (a hosted API: both prices, or both NULL when unknown, and
-- `batch_api`) or `per_hour` (a local provider or a fine-tune: `cost_per_hour`); NULL: not
-- recorded.
ALTER TABLE arms ADD COLUMN pricing TEXT;
ALTER TABLE arms ADD COLUMN input_per_mtok REAL;
ALTER TABLE arms ADD COLUMN output_per_mtok REAL;
ALTER TABLE arms ADD COLUMN batch_api INTEGER;
ALTER TABLE arms ADD COLUMN cost_per_hour REAL;

UPDATE runs SET
    daily_requests = json_extract(spec_json, '$.costs.daily_requests'),
    horizon_days = json_extract(spec_json, '$.costs.horizon_days'),
    hourly_rate_usd = json_extract(spec_json, '$.costs.hourly_rate_usd'),
    prompt_iteration_hours = json_extract(spec_json, '$.costs.prompt_iteration_hours'),
    data_prep_hours = json_extract(spec_json, '$.costs.data_prep_hours'),
    mlops_hours_per_month = json_extract(spec_json, '$.costs.mlops_hours_per_month'),
    finetune_hourly_usd = json_extract(spec_json, '$.costs.finetune_hourly_usd'),
    batch_api = json_extract(spec_json, '$.costs.batch_api'),
    decision_metric = json_extract(spec_json, '$.decision.metric'),
    quality_target = json_extract(spec_json, '$.decision.quality_target'),
    -- No list, or an empty one (plans stored before the list existed read back empty): not
    -- known, and the report marks as declared what differs from its default, as it did.
    declared_costs = (
        SELECT group_concat(d.value, ',') FROM json_each(runs.spec_json, '$.declared_costs') d
    )
WHERE json_valid(spec_json)
    AND json_type(spec_json, '$.costs.daily_requests') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.horizon_days') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.hourly_rate_usd') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.prompt_iteration_hours') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.data_prep_hours') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.mlops_hours_per_month') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.finetune_hourly_usd') IN ('integer', 'real')
    AND json_type(spec_json, '$.costs.batch_api') IN ('true', 'false')
    AND json_type(spec_json, '$.decision.metric') = 'text'
    AND json_type(spec_json, '$.decision.quality_target') IN ('integer', 'real');

-- A `spec_json` that is not JSON reads as `{}` (no arms to match): `json_each` would fail on it.

-- Fine-tunes: their compute's hourly price.
UPDATE arms SET cost_per_hour = (
    SELECT json_extract(f.value, '$.compute.cost_per_hour')
    FROM runs r, json_each(iif(json_valid(r.spec_json), r.spec_json, '{}'), '$.finetunes') f
    WHERE r.id = arms.run_id
        AND json_extract(f.value, '$.id') = arms.arm
)
WHERE kind = 'finetune';

-- Prompt arms on local providers: the provider's hourly price.
UPDATE arms SET cost_per_hour = (
    SELECT json_extract(p.value, '$.cost_per_hour')
    FROM runs r, json_each(iif(json_valid(r.spec_json), r.spec_json, '{}'), '$.providers') p
    WHERE r.id = arms.run_id
        AND json_extract(p.value, '$.type') = 'local'
        AND json_extract(p.value, '$.id') = arms.provider
)
WHERE kind = 'prompt';

UPDATE arms SET pricing = 'per_hour' WHERE cost_per_hour IS NOT NULL;

-- Prompt arms on hosted providers: the spec's price, when it gave one, and the batch flag.
UPDATE arms SET (pricing, input_per_mtok, output_per_mtok, batch_api) = (
    SELECT
        CASE WHEN json_type(p.value, '$.pricing') = 'object' THEN 'per_token'
             ELSE 'legacy_per_token' END,
        json_extract(p.value, '$.pricing.input_per_mtok'),
        json_extract(p.value, '$.pricing.output_per_mtok'),
        coalesce(json_extract(p.value, '$.batch_api'), 0)
    FROM runs r, json_each(iif(json_valid(r.spec_json), r.spec_json, '{}'), '$.providers') p
    WHERE r.id = arms.run_id
        AND json_extract(p.value, '$.type') = 'openai'
        AND json_extract(p.value, '$.id') = arms.provider
)
WHERE kind = 'prompt' AND pricing IS NULL;
