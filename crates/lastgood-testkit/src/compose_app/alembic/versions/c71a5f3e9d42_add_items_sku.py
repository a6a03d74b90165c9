"""add items.sku

Revision ID: c71a5f3e9d42
Revises: 8b4e6d0c2a91
Create Date: 2025-03-17 11:05:37.904118
"""
from alembic import op
import sqlalchemy as sa

revision = "c71a5f3e9d42"
down_revision = "8b4e6d0c2a91"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("sku", sa.String(64), nullable=True))
    op.create_index("ix_items_sku", "items", ["sku"], unique=True)


def downgrade():
    op.drop_index("ix_items_sku", table_name="items")
    op.drop_column("items", "sku")
