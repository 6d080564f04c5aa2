"""One Cog per feature: chat, messages, imagine, account, admin prompts."""
