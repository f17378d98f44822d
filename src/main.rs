//! `c2`: see the library for everything it does.

fn main() -> std::process::ExitCode {
    camus2::main()
}
