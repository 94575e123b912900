-- The columns of each project's user table and their types, in the order
-- they were added. The table itself is in the user database (by default
-- this one); a column is registered here before it is added there.
CREATE TABLE user_columns (
    project VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    field_type VARCHAR(40) NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (project, name)
);
