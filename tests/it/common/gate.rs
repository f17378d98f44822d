//! A TCP proxy that holds traffic until the test opens it, to change the
//! world between two requests of one c2 command.
//!
//! The first connection goes through, except that its answer stops after
//! `first_bytes` bytes; every later connection waits before reaching the
//! server. `open` lets everything through.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

pub struct Gate {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    opened: Arc<(Mutex<bool>, Condvar)>,
}

impl Gate {
    pub fn start(target: u16, first_bytes: usize) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let opened = Arc::new((Mutex::new(false), Condvar::new()));
        let (count, gate) = (connections.clone(), opened.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let nth = count.fetch_add(1, Ordering::SeqCst);
                let gate = gate.clone();
                std::thread::spawn(move || {
                    if nth > 0 {
                        wait_open(&gate);
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        return;
                    };
                    let held = if nth == 0 { first_bytes } else { usize::MAX };
                    let (c, s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let gate2 = gate.clone();
                    std::thread::spawn(move || pipe(c, s, usize::MAX, &gate2));
                    pipe(server, client, held, &gate);
                });
            }
        });
        Gate {
            port,
            connections,
            opened,
        }
    }

    /// Connections made so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        *self.opened.0.lock().unwrap() = true;
        self.opened.1.notify_all();
    }
}

fn wait_open(gate: &(Mutex<bool>, Condvar)) {
    let mut open = gate.0.lock().unwrap();
    while !*open {
        open = gate.1.wait(open).unwrap();
    }
}

/// Copies `from` to `to`, pausing after `free` bytes until the gate opens.
fn pipe(mut from: TcpStream, mut to: TcpStream, free: usize, gate: &(Mutex<bool>, Condvar)) {
    let mut sent = 0usize;
    let mut buf = [0u8; 16384];
    loop {
        let room = free.saturating_sub(sent);
        if room == 0 {
            wait_open(gate);
        }
        let want = if room == 0 {
            buf.len()
        } else {
            room.min(buf.len())
        };
        match from.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent = sent.saturating_add(n);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
