-- The cells consumer's state (#17, consumers/cells.py): per partition of market.cells, one row
-- per key it holds, a split family's cell ("plastics@n0e1": its book, the wide requests lent to
-- it, what it told the wide key) or wide key ("plastics@wide": the wide requests, the loans, the
-- mirror of the cells' offers). `body` is the state as msgpack, rewritten in the transaction of
-- every batch that changed it, with the batch's events and offset (decision 4).
CREATE TABLE cells_state (
    group_id  text    NOT NULL,
    topic     text    NOT NULL,
    partition integer NOT NULL,
    key       text    NOT NULL,
    body      bytea   NOT NULL,
    PRIMARY KEY (group_id, topic, partition, key)
);
