"""cache generation: a counter triggers bump when what verification caches changes

Revision ID: 0006_cache_generation
Revises: 0005_partners
Create Date: 2026-11-28 12:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_cache_generation'
down_revision = '0005_partners'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('cache_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cache_generation'))
    )
    # A later revision that rebuilds one of these tables on SQLite (batch_alter_table
    # copies it) drops its triggers with it, and must install them again.
    from registry.generation import WATCHED_TABLES, postgres_statements, sqlite_statements

    dialect = op.get_bind().dialect.name
    for table in WATCHED_TABLES:
        statements = postgres_statements(table) if dialect == 'postgresql' else sqlite_statements(table)
        for statement in statements:
            op.execute(statement)


def downgrade():
    from registry.generation import WATCHED_TABLES, drop_statements

    dialect = op.get_bind().dialect.name
    for table in WATCHED_TABLES:
        for statement in drop_statements(table, dialect):
            op.execute(statement)
    if dialect == 'postgresql':
        op.execute('DROP FUNCTION IF EXISTS ecert_bump_cache_generation()')
    op.drop_table('cache_generation')
