use clap::Parser;
use kefu::cli::{self, Cli, Command};

fn main() {
    let cli = Cli::parse();
    init_tracing();
    match run(&cli) {
        Ok(exit_code) => std::process::exit(exit_code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    let config = cli.load_config()?;
    let exit_code = match &cli.command {
        Command::Serve(_) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(kefu::app::serve(config))?;
            0
        }
        Command::Index(args) => cli::run_index(&config, args.strict)?,
        Command::Search(args) => cli::run_search(&config, args)?,
        Command::Suggest(args) => cli::run_suggest(&config, args)?,
        Command::User(args) => cli::run_user(&config, &args.action)?,
        Command::Migrate(_) => cli::run_migrate(&config)?,
        Command::Export(args) => cli::run_export(&config, args)?,
        Command::Import(args) => cli::run_import(&config, args)?,
    };
    Ok(exit_code)
}

/// Logs go to stderr; `KEFU_LOG_FORMAT=json` for JSON lines, `RUST_LOG` for levels (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("KEFU_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
