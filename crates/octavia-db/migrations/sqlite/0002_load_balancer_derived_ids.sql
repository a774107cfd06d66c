-- A load balancer's derived fields (its listener ids, pool ids and tags) kept on its own row by
-- triggers, so reading a load balancer is one single-row lookup instead of three aggregate
-- subqueries. Each column holds what the subquery used to compute: ids comma separated,
-- oldest first (created_at, id); tags a JSON array in position order; NULL when empty.
ALTER TABLE load_balancer ADD COLUMN listener_id_list TEXT;
ALTER TABLE load_balancer ADD COLUMN pool_id_list TEXT;
ALTER TABLE load_balancer ADD COLUMN tag_list TEXT;

CREATE TRIGGER trg_listener_insert_lb_ids AFTER INSERT ON listener BEGIN
    UPDATE load_balancer SET listener_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM listener
        WHERE load_balancer_id = NEW.load_balancer_id
    ) WHERE id = NEW.load_balancer_id;
END;
CREATE TRIGGER trg_listener_delete_lb_ids AFTER DELETE ON listener BEGIN
    UPDATE load_balancer SET listener_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM listener
        WHERE load_balancer_id = OLD.load_balancer_id
    ) WHERE id = OLD.load_balancer_id;
END;
CREATE TRIGGER trg_listener_update_lb_ids AFTER UPDATE OF load_balancer_id, created_at ON listener
BEGIN
    UPDATE load_balancer SET listener_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM listener
        WHERE load_balancer_id = load_balancer.id
    ) WHERE id IN (OLD.load_balancer_id, NEW.load_balancer_id);
END;

CREATE TRIGGER trg_pool_insert_lb_ids AFTER INSERT ON pool BEGIN
    UPDATE load_balancer SET pool_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM pool
        WHERE load_balancer_id = NEW.load_balancer_id
    ) WHERE id = NEW.load_balancer_id;
END;
CREATE TRIGGER trg_pool_delete_lb_ids AFTER DELETE ON pool BEGIN
    UPDATE load_balancer SET pool_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM pool
        WHERE load_balancer_id = OLD.load_balancer_id
    ) WHERE id = OLD.load_balancer_id;
END;
CREATE TRIGGER trg_pool_update_lb_ids AFTER UPDATE OF load_balancer_id, created_at ON pool
BEGIN
    UPDATE load_balancer SET pool_id_list = (
        SELECT group_concat(id, ',' ORDER BY created_at, id) FROM pool
        WHERE load_balancer_id = load_balancer.id
    ) WHERE id IN (OLD.load_balancer_id, NEW.load_balancer_id);
END;

-- Tags belong to every kind of object; for anything but a load balancer the UPDATE matches
-- no row.
CREATE TRIGGER trg_tags_insert_lb AFTER INSERT ON tags BEGIN
    UPDATE load_balancer SET tag_list = (
        SELECT json_group_array(tag ORDER BY position, tag) FROM tags
        WHERE resource_id = NEW.resource_id
    ) WHERE id = NEW.resource_id;
END;
CREATE TRIGGER trg_tags_delete_lb AFTER DELETE ON tags BEGIN
    UPDATE load_balancer SET tag_list = (
        SELECT json_group_array(tag ORDER BY position, tag) FROM tags
        WHERE resource_id = OLD.resource_id
    ) WHERE id = OLD.resource_id;
END;
CREATE TRIGGER trg_tags_update_lb AFTER UPDATE ON tags BEGIN
    UPDATE load_balancer SET tag_list = (
        SELECT json_group_array(tag ORDER BY position, tag) FROM tags
        WHERE resource_id = load_balancer.id
    ) WHERE id IN (OLD.resource_id, NEW.resource_id);
END;

-- Existing rows.
UPDATE load_balancer SET
    listener_id_list = (SELECT group_concat(id, ',' ORDER BY created_at, id) FROM listener
                        WHERE load_balancer_id = load_balancer.id),
    pool_id_list = (SELECT group_concat(id, ',' ORDER BY created_at, id) FROM pool
                    WHERE load_balancer_id = load_balancer.id),
    tag_list = (SELECT json_group_array(tag ORDER BY position, tag) FROM tags
                WHERE resource_id = load_balancer.id);
