"""add items.price

Revision ID: 8b4e6d0c2a91
Revises: 3f1c9a2b7d10
Create Date: 2025-03-10 16:40:02.551872
"""
from alembic import op
import sqlalchemy as sa

revision = "8b4e6d0c2a91"
down_revision = "3f1c9a2b7d10"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("price", sa.Numeric(10, 2), nullable=True))


def downgrade():
    op.drop_column("items", "price")
