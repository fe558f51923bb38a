"""signed login states: only spent states are stored

Revision ID: 0004_signed_login_state
Revises: 0003_quiz
Create Date: 2026-11-26 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_signed_login_state'
down_revision: str | Sequence[str] | None = '0003_quiz'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lti_used_state',
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('platform_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['platform_id'], ['lti_platform.id'], name=op.f('fk_lti_used_state_platform_id_lti_platform'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_lti_used_state'))
    )
    with op.batch_alter_table('lti_used_state', schema=None) as batch_op:
        batch_op.create_index('ix_lti_used_state_expires_at', ['expires_at'], unique=False)
    # Logins in flight when this runs were issued unsigned states: they fail once and are
    # started again from the course page.
    with op.batch_alter_table('lti_login_state', schema=None) as batch_op:
        batch_op.drop_index('ix_lti_login_state_expires_at')
    op.drop_table('lti_login_state')


def downgrade() -> None:
    op.create_table('lti_login_state',
    sa.Column('state', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('platform_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['platform_id'], ['lti_platform.id'], name=op.f('fk_lti_login_state_platform_id_lti_platform'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_lti_login_state')),
    sa.UniqueConstraint('nonce', name=op.f('uq_lti_login_state_nonce'))
    )
    with op.batch_alter_table('lti_login_state', schema=None) as batch_op:
        batch_op.create_index('ix_lti_login_state_expires_at', ['expires_at'], unique=False)
    with op.batch_alter_table('lti_used_state', schema=None) as batch_op:
        batch_op.drop_index('ix_lti_used_state_expires_at')
    op.drop_table('lti_used_state')
