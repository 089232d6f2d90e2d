//! `veil admin add-user|list-users|remove-user`: the admin users who sign in to the Xylolabs
//! admin API and the field page's console. Passwords come from the terminal or stdin, never argv.

use std::io::{BufRead, IsTerminal};

use crate::cli::{AdminAction, AdminCmd};

/// The new password: asked twice on a terminal without echo, else the first line of stdin.
fn read_password(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

pub fn run(cmd: AdminCmd) -> anyhow::Result<i32> {
    let store = super::open_store(&cmd.config, &cmd.state_dir)?;
    match cmd.action {
        AdminAction::AddUser { name, reset } => {
            anyhow::ensure!(
                crate::store::admin_users::valid_username(&name),
                "a user name is 1..64 letters, digits, '.', '_', '-' or '@'"
            );
            let password = read_password(&name)?;
            let user = store.add_admin_user(&name, &password, reset)?;
            let what = if reset { "new password for" } else { "added" };
            println!("{what} admin user {} (id {})", user.username, user.id);
        }
        AdminAction::ListUsers { json } => {
            let users = store.list_admin_users()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!("{:<5} {:<12} {:<12} name", "id", "created", "last login");
                for u in users {
                    let last = u.last_login_at.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
                    println!("{:<5} {:<12} {:<12} {}", u.id, u.created_at, last, u.username);
                }
            }
        }
        AdminAction::RemoveUser { name } => {
            store.remove_admin_user(&name)?;
            println!("removed admin user {name}");
        }
    }
    Ok(0)
}
