-- How production traffic is served (`costs.serving`: mode, batch window, utilisation), as JSON;
-- NULL means the defaults (real time).
ALTER TABLE runs ADD COLUMN serving TEXT;
