"""Our Slack installation tables are the ones slack_sdk's SQLAlchemy stores read and write."""

from __future__ import annotations

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from storage.slack_tables import TOKEN_COLUMNS, slack_bots, slack_installations, slack_oauth_states


def _shape(table: sa.Table) -> dict[str, tuple[bool, bool]]:
    return {c.name: (c.nullable or False, c.primary_key) for c in table.columns}


def test_every_column_slack_sdk_uses_is_there_alike() -> None:
    theirs = sa.MetaData()
    pairs = [
        (SQLAlchemyInstallationStore.build_installations_table(theirs, "a"), slack_installations),
        (SQLAlchemyInstallationStore.build_bots_table(theirs, "b"), slack_bots),
        (SQLAlchemyOAuthStateStore.build_oauth_states_table(theirs, "c"), slack_oauth_states),
    ]
    for sdk, ours in pairs:
        assert _shape(ours) == _shape(sdk), ours.name
        for column in sdk.columns:
            mine = ours.columns[column.name]
            assert type(mine.type) is type(column.type), column.name
            if column.name in TOKEN_COLUMNS:  # ciphertext is longer than a token
                assert mine.type.length >= 4 * column.type.length  # type: ignore[attr-defined]
