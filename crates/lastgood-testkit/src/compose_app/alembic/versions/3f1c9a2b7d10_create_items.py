"""create items

Revision ID: 3f1c9a2b7d10
Revises:
Create Date: 2025-03-03 09:12:44.120391
"""
from alembic import op
import sqlalchemy as sa

revision = "3f1c9a2b7d10"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade():
    op.drop_table("items")
