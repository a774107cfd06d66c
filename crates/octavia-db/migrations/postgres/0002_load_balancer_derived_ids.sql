-- A load balancer's derived fields (its listener ids, pool ids and tags) kept on its own row by
-- triggers, so reading a load balancer is one single-row lookup instead of three aggregate
-- subqueries. Each column holds what the subquery used to compute: ids comma separated,
-- oldest first (created_at, id); tags a JSON array in position order; NULL when empty.
ALTER TABLE load_balancer
    ADD COLUMN listener_id_list TEXT,
    ADD COLUMN pool_id_list TEXT,
    ADD COLUMN tag_list TEXT;

CREATE FUNCTION octavia_lb_refresh_listener_ids(lb VARCHAR) RETURNS void LANGUAGE sql AS $$
    UPDATE load_balancer SET listener_id_list = (
        SELECT string_agg(id, ',' ORDER BY created_at, id) FROM listener WHERE load_balancer_id = lb
    ) WHERE id = lb
$$;

CREATE FUNCTION octavia_lb_refresh_pool_ids(lb VARCHAR) RETURNS void LANGUAGE sql AS $$
    UPDATE load_balancer SET pool_id_list = (
        SELECT string_agg(id, ',' ORDER BY created_at, id) FROM pool WHERE load_balancer_id = lb
    ) WHERE id = lb
$$;

-- Tags belong to every kind of object; for anything but a load balancer no row matches.
CREATE FUNCTION octavia_lb_refresh_tags(res VARCHAR) RETURNS void LANGUAGE sql AS $$
    UPDATE load_balancer SET tag_list = (
        SELECT CAST(json_agg(tag ORDER BY position, tag) AS TEXT) FROM tags WHERE resource_id = res
    ) WHERE id = res
$$;

-- Row triggers: refresh the load balancer the old row named and the one the new row names.
CREATE FUNCTION octavia_listener_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM octavia_lb_refresh_listener_ids(OLD.load_balancer_id); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM octavia_lb_refresh_listener_ids(NEW.load_balancer_id); END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION octavia_pool_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM octavia_lb_refresh_pool_ids(OLD.load_balancer_id); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM octavia_lb_refresh_pool_ids(NEW.load_balancer_id); END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION octavia_tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN PERFORM octavia_lb_refresh_tags(OLD.resource_id); END IF;
    IF TG_OP <> 'DELETE' THEN PERFORM octavia_lb_refresh_tags(NEW.resource_id); END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trg_listener_lb_ids AFTER INSERT OR DELETE OR UPDATE OF load_balancer_id, created_at
    ON listener FOR EACH ROW EXECUTE FUNCTION octavia_listener_changed();
CREATE TRIGGER trg_pool_lb_ids AFTER INSERT OR DELETE OR UPDATE OF load_balancer_id, created_at
    ON pool FOR EACH ROW EXECUTE FUNCTION octavia_pool_changed();
CREATE TRIGGER trg_tags_lb AFTER INSERT OR DELETE OR UPDATE
    ON tags FOR EACH ROW EXECUTE FUNCTION octavia_tags_changed();

-- Existing rows.
SELECT octavia_lb_refresh_listener_ids(id), octavia_lb_refresh_pool_ids(id),
       octavia_lb_refresh_tags(id)
FROM load_balancer;
